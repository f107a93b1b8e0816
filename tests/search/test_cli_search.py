"""`qra-bench search`: the found configuration is feasible, reproducible and exported in forms peft and
quantize_blocks accept; user mistakes are one line on stderr with exit status 2.

The surrogate is fitted on the stand-in table of the surrogate tests (made-up numbers, not results).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from qra_bench.space import QRConfig
from standin_surrogate import FAST_XGB, table_and_surrogate, write_table

pytestmark = pytest.mark.filterwarnings("ignore:Please use `dict\\(config\\)`:DeprecationWarning")

# Fewer generations and Stage-2 evaluations than the defaults: the tests check plumbing, not search quality.
FAST = ["--generations", "3", "--evals", "6"]


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> tuple[Path, Path]:
    return table_and_surrogate(tmp_path_factory.mktemp("search-standin"))


@pytest.fixture(scope="module")
def tiny_base():
    from qra_bench.models import load_base

    return load_base("tiny")


@pytest.fixture(scope="module")
def searched(standin, tmp_path_factory, cli_module):
    """One search at uniform-4bit written to a folder: (exit code, stdout, stderr, out folder)."""
    table, surrogate = standin
    out = tmp_path_factory.mktemp("search-out")
    code, stdout, err = cli_module(
        [
            "search",
            "--table",
            str(table),
            "--surrogate",
            str(surrogate),
            "--budget",
            "uniform-4bit",
            "--method",
            "autoqra",
            "--real-evals",
            "0",
            "--seed",
            "0",
            "--out",
            str(out),
            *FAST,
        ]
    )
    return code, stdout, err, out


@pytest.fixture(scope="module")
def cli_module():
    """The `cli` fixture's runner at module scope (capsys is function-scoped): stdout and stderr captured here."""
    import contextlib
    import io

    from qra_bench.cli import main

    def run(args: list[str]) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(args)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        return code, out.getvalue(), err.getvalue()

    return run


def _memory_model(surrogate: Path):
    from qra_bench.search.surrogate_search import load_problem

    table = json.loads((surrogate / "manifest.json").read_text())["table"]["path"]
    return load_problem(table, surrogate).memory_model


def test_search_prints_configuration_prediction_and_itemized_memory(searched):
    code, stdout, err, _ = searched
    assert code == 0, err
    for text in (
        "bits ",
        "ranks ",
        "predicted      accuracy",
        "±",
        "budget         uniform-4bit = ",
        "memory         fits",
        "lora_adapters",
        "activations",
        "total",
        "wall ",
    ):
        assert text in stdout


def test_exported_config_is_feasible_under_the_budget(searched, standin):
    _, _, _, out = searched
    doc = json.loads((out / "config.json").read_text())
    cfg = QRConfig(bits=doc["bits"], ranks=doc["ranks"])
    assert doc["hash"] == cfg.hash
    mm = _memory_model(standin[1])
    budget = mm.budget("uniform-4bit")
    assert mm.total_bytes(cfg) <= budget.bytes
    record = json.loads((out / "search.json").read_text())
    assert record["feasible"] is True and record["memory"]["total"] == mm.total_bytes(cfg)
    assert record["budget"]["bytes"] == budget.bytes
    assert all(c["predicted_mean"] <= record["predicted_mean"] for c in record["candidates"])


def test_lora_config_loads_into_peft_and_gives_every_block_its_rank(searched, tiny_base):
    from peft import LoraConfig, get_peft_model

    from qra_bench.lora import adapter_ranks

    _, _, _, out = searched
    cfg = QRConfig(**{k: v for k, v in json.loads((out / "config.json").read_text()).items() if k != "hash"})
    lora = LoraConfig(**json.loads((out / "lora_config.json").read_text()))
    assert sorted(lora.target_modules) == sorted(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    model = get_peft_model(copy.deepcopy(tiny_base.model), lora)
    assert adapter_ranks(model) == list(cfg.ranks)


def test_lora_export_of_mixed_ranks_with_an_adapterless_block(tiny_base):
    from peft import LoraConfig, get_peft_model

    from qra_bench.lora import LoraSettings, adapter_ranks
    from qra_bench.export import lora_config_dict

    cfg = QRConfig(bits=(4,) * 8, ranks=(4, 8, 16, 0, 4, 4, 16, 8))
    d = json.loads(json.dumps(lora_config_dict(cfg, LoraSettings(alpha_per_rank=2.0))))
    assert d["r"] == 4 and d["lora_alpha"] == 8  # the most common rank
    assert d["rank_pattern"]["^model.layers.2.mlp.down_proj$"] == 16
    model = get_peft_model(copy.deepcopy(tiny_base.model), LoraConfig(**d))
    assert adapter_ranks(model) == list(cfg.ranks)
    down = model.base_model.model.model.layers[2].mlp.down_proj
    assert down.lora_alpha["default"] == 32  # alpha = 2 * rank on every module, not the default's


def test_quant_config_applies_with_quantize_blocks(searched, tiny_base):
    from torch import nn

    from qra_bench.export import apply_quant_config

    _, _, _, out = searched
    doc = json.loads((out / "quant_config.json").read_text())
    assert doc["backend"] == "hqq" and doc["group_size"] == 128 and len(doc["modules"]) == 7 * len(doc["bits"])
    model = copy.deepcopy(tiny_base.model)
    report = apply_quant_config(model, out / "quant_config.json")
    for block, bits in zip(model.model.layers, doc["bits"]):
        assert (type(block.self_attn.q_proj) is nn.Linear) == (bits == 16)
    assert [e == 0.0 for e in report.block_recon_error] == [b == 16 for b in doc["bits"]]


def test_same_seed_gives_the_same_configuration_and_files(searched, standin, cli_module, tmp_path):
    code, stdout, err, first = searched
    table, surrogate = standin
    again = tmp_path / "again"
    code2, stdout2, err2 = cli_module(
        [
            "search",
            "--table",
            str(table),
            "--surrogate",
            str(surrogate),
            "--budget",
            "uniform-4bit",
            "--seed",
            "0",
            "--out",
            str(again),
            *FAST,
        ]
    )
    assert code2 == 0, err2

    def strip(text: str) -> list[str]:  # wall time and output paths differ between runs
        return [line for line in text.splitlines() if not line.startswith(("wall", "wrote"))]

    assert strip(stdout) == strip(stdout2)
    for name in ("config.json", "lora_config.json", "quant_config.json", "search.json"):
        assert (first / name).read_text() == (again / name).read_text()


def test_any_registered_optimizer_answers_from_the_surrogate(standin, cli_module):
    table, surrogate = standin
    code, stdout, err = cli_module(
        [
            "search",
            "--table",
            str(table),
            "--surrogate",
            str(surrogate),
            "--budget",
            "uniform-3bit",
            "--method",
            "random",
            "--evals",
            "20",
        ]
    )
    assert code == 0, err
    assert "method         random, seed 0" in stdout and "memory         fits" in stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--budget", "uniform-4bits-ish"], "cannot parse budget 'uniform-4bits-ish'"),
        (["--budget", "1MiB"], "budget 1,048,576 bytes is below the smallest configuration"),
        (["--method", "annealing"], "unknown optimizer 'annealing'; available:"),
        (["--backend", "bnb"], "backend 'bnb' cannot store bits [2, 3]"),
    ],
    ids=["unknown-budget", "infeasible-budget", "unknown-method", "backend-without-the-ladder"],
)
def test_bad_choices_are_one_line_errors_with_exit_2(standin, cli_module, args, message):
    table, surrogate = standin
    code, stdout, err = cli_module(["search", "--table", str(table), "--surrogate", str(surrogate), *args])
    assert code == 2 and stdout == ""
    assert err.startswith("qra-bench: error: ") and err.count("\n") == 1 and message in err


def test_missing_surrogate_or_table_is_a_one_line_error(standin, cli_module, tmp_path):
    table, surrogate = standin
    code, _, err = cli_module(["search", "--table", str(table), "--surrogate", str(tmp_path / "none")])
    assert code == 2 and err.count("\n") == 1 and "no surrogate at" in err
    code, _, err = cli_module(["search", "--table", str(tmp_path / "none"), "--surrogate", str(surrogate)])
    assert code == 2 and err.count("\n") == 1 and "no table at" in err


def test_a_changed_table_is_refused_unless_the_mismatch_is_allowed(standin, cli_module, tmp_path):
    _, surrogate = standin
    other = write_table(tmp_path / "other-table", n_configs=12, design_seed=1)
    code, stdout, err = cli_module(["search", "--table", str(other), "--surrogate", str(surrogate), *FAST])
    assert code == 2 and stdout == "" and err.count("\n") == 1
    assert "content hash" in err and "--allow-hash-mismatch" in err
    code, stdout, err = cli_module(
        ["search", "--table", str(other), "--surrogate", str(surrogate), "--allow-hash-mismatch", *FAST]
    )
    assert code == 0, err
    assert "HASH MISMATCH allowed" in stdout


@pytest.mark.slow
def test_real_evaluations_run_trials_and_append_them_to_the_table(tmp_path, cli_module):
    """One real (short) trial on the shipped tiny/news table's model and task; its rows land in a copy."""
    from qra_bench.surrogate import fit_surrogate
    from qra_bench.table import ResultsTable

    table = tmp_path / "tiny-news"
    shutil.copytree(Path(__file__).resolve().parents[2] / "datasets_cache" / "tables" / "tiny-news", table)
    before = len(ResultsTable(table).read())
    surrogate = tmp_path / "surrogate"
    fit_surrogate(table, model="xgb", out=surrogate, params=FAST_XGB)
    code, stdout, err = cli_module(
        [
            "search",
            "--table",
            str(table),
            "--surrogate",
            str(surrogate),
            "--budget",
            "uniform-4bit",
            "--real-evals",
            "1",
            "--steps",
            "4",
            "--out",
            str(tmp_path / "o"),
            *FAST,
        ]
    )
    assert code == 0, err
    assert "measured       accuracy" in stdout and "1 real trials" in stdout
    assert len(ResultsTable(table).read()) > before  # one row per checkpoint of the new trial
