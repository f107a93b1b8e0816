"""experiments/claims (the package behind experiments/claims.py): every claim writes its Markdown with a verdict,
the scenario, the table's hash and (where it uses one) the surrogate's manifest hash; a table too small for a claim
gets "not testable yet", never a crash.

The tables here are fixtures of the code, not results: the surrogate tests' stand-in function of bits, ranks and
seeded noise (``tests/surrogate/conftest.py``), on uniform anchors plus random configurations, with made-up
static proxies that depend on the bits only, as real ones do.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qra_bench.arch import load_arch
from qra_bench.memory import MemoryModel, MemorySettings
from qra_bench.scenarios import SCENARIOS
from qra_bench.space import QRConfig
from qra_bench.table import ResultsTable, TrialRow

_ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


sys.path.insert(0, str(_ROOT / "experiments"))
import claims as CLAIMS  # noqa: E402  (the package experiments/claims/)

STANDIN = _load("_claims_standin", _ROOT / "tests" / "surrogate" / "conftest.py")  # two `conftest` modules would clash
FAST_XGB = {"n_estimators": 10, "calibration_folds": 2, "n_members": 2}
TABLE_CLAIMS = ("table1", "spread", "proxy", "compensation")
SURROGATE_CLAIMS = ("table1", "screening", "evals_to_target", "ablations")
#: The fixtures are judged at tiny-news's budget (uniform-4bit); the default scenario is the headline.
NEWS = ["--scenario", "tiny-news"]
PICK = "autoqra_pick_tiny-news.jsonl"
VERDICT = re.compile(r"^\*\*Verdict:\*\* ((?:supported|not supported|not testable yet: ).*)$", re.M)


def _proxies(cfg: QRConfig) -> dict:
    """Made-up static proxies: worse with fewer bits, blind to the rank (LoRA starts at zero)."""
    damage = float(np.mean(2.0 ** -np.asarray(cfg.bits, dtype=float)))
    return {"proxy_eval_loss": 1.0 + 3.0 * damage, "proxy_lm_loss": 3.0 + 3.0 * damage, "proxy_recon_error": damage}


def standin_memory() -> MemoryModel:
    """The memory model the stand-in table's rows record (``mem_predicted_bytes``)."""
    return MemoryModel(
        load_arch(STANDIN.ARCH),
        MemorySettings(
            backend=STANDIN.BACKEND,
            weight_dtype_bytes=4,
            meta_dtype_bytes=4,
            lora_dtype_bytes=4,
            grad_dtype_bytes=4,
            optimizer_state_bytes=4,
            batch_size=16,
            seq_len=97,
            activation_dtype_bytes=4,
        ),
    )


def trial_row(memory: MemoryModel, cfg: QRConfig, seed: int, frac: float, eval_loss: float) -> TrialRow:
    """One ok row of ``cfg`` in the stand-in's recipe (accuracy follows the loss as in the stand-in)."""
    settings = STANDIN.TRIAL_SETTINGS
    return TrialRow(
        config_hash=cfg.hash,
        bits=cfg.bits,
        ranks=cfg.ranks,
        n_blocks=cfg.n_blocks,
        avg_bits=cfg.avg_bits,
        avg_rank=cfg.avg_rank,
        seed=seed,
        fidelity=int(frac * settings["max_steps"]),
        fidelity_frac=frac,
        max_steps=settings["max_steps"],
        status="ok",
        eval_loss=eval_loss,
        accuracy=(2.0 - eval_loss) / 2.0,
        mem_predicted_bytes=memory.total_bytes(cfg),
        time_total_s=60.0 * frac,
        model_name=STANDIN.ARCH,
        task_name="standin",
        model_sha256=STANDIN.MODEL_SHA,
        task_data_sha256=STANDIN.TASK_SHA,
        backend=STANDIN.BACKEND,
        quant_settings=json.dumps(settings["quant"]),
        trial_settings=json.dumps(settings),
        lib_versions="{}",
        code_version="standin",
        host="standin",
        device="cpu",
        started_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:00:01+00:00",
        run_id="standin",
        **_proxies(cfg),
    )


def realistic_rows(n_random: int = 30, repeats: int = 5) -> list[TrialRow]:
    """Uniform anchors (bits 2/3/4/8/16 x ranks 4/8/16, seeds 0 and 1) and ``n_random`` random configurations
    (seed 0; the first ``repeats`` also seed 1), at fidelities 0.5 and 1, in the stand-in's recipe."""
    memory = standin_memory()
    space = memory.space
    anchors = [space.config((b,) * space.n_blocks, (r,) * space.n_blocks) for b in (2, 3, 4, 8, 16) for r in (4, 8, 16)]
    randoms = space.sample_batch(np.random.default_rng(1), n_random)
    design = [(c, (0, 1)) for c in anchors] + [(c, (0, 1) if i < repeats else (0,)) for i, c in enumerate(randoms)]
    return [
        trial_row(memory, cfg, seed, frac, 2.0 - 2.0 * STANDIN.standin_accuracy(cfg, seed, frac))
        for cfg, seeds in design
        for seed in seeds
        for frac in (0.5, 1.0)
    ]


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("claims") / "table"
    ResultsTable(path).append(realistic_rows())
    return path


@pytest.fixture(scope="module")
def surrogate(table) -> Path:
    from qra_bench.surrogate import fit_surrogate

    out = table.parent / "surrogate"
    fit_surrogate(table, target="eval_loss", model="xgb", out=out, params=FAST_XGB)
    return out


def _verdict(md: str) -> str:
    m = VERDICT.search(md)
    assert m, md[:400]
    return m.group(1)


def test_table_claims_write_markdown_with_verdict_table_hash_and_plot(table, tmp_path, capsys):
    out = tmp_path / "results"
    assert CLAIMS.main([*NEWS, "--claim", ",".join(TABLE_CLAIMS), "--table", str(table), "--out", str(out)]) == 0
    digest = ResultsTable(table).content_hash()
    for name in TABLE_CLAIMS:
        md = (out / f"claim_{name}.md").read_text()
        _verdict(md)
        assert digest in md and "**Paper**: " in md
        record = json.loads((out / f"claim_{name}.json").read_text())
        assert record["table_hash"] == digest and record["verdict"] == _verdict(md)
    for name in ("spread", "proxy", "compensation", "table1"):
        assert (out / f"claim_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "| claim | verdict | file |" in printed
    # The budget is the scenario's (tiny-news: uniform-4bit) evaluated with the table's memory model.
    memory = standin_memory()
    four = memory.total_bytes(memory.space.uniform(4, max(memory.space.ranks)))
    record = json.loads((out / "claim_table1.json").read_text())
    assert record["scenario"] == "tiny-news" and record["numbers"]["budget_bytes"] == four
    labels = [r["label"] for r in record["numbers"]["rows"]]
    assert labels[0].startswith("16-bit LoRA") and labels[1].startswith("uniform 4-bit")
    assert labels[2].startswith("best fitting uniform") and len(labels) == 3  # no surrogate, so no pick
    md = (out / "claim_spread.md").read_text()
    assert "scenario: `tiny-news`" in md and f"--scenario tiny-news --table {table}" in md


def test_claims_read_what_the_stand_in_was_built_with(table, tmp_path):
    """The stand-in has a bits x rank interaction (rank helps more at low bits) and proxies that track the bits."""
    out = tmp_path / "results"
    CLAIMS.main([*NEWS, "--claim", "compensation,proxy,spread", "--table", str(table), "--out", str(out)])
    assert _verdict((out / "claim_compensation.md").read_text()).startswith("supported")
    proxy = json.loads((out / "claim_proxy.json").read_text())["numbers"]["all"]["proxy_recon_error"]
    assert proxy["n"] == 45 and proxy["spearman"] > 0.5  # more damage before fine-tuning, higher loss after
    spread = json.loads((out / "claim_spread.json").read_text())["numbers"]
    assert spread["eval_loss"]["noise_std"] > 0 and spread["n_configs_within_budget"] >= 5


def test_a_table_too_small_for_any_claim_gets_not_testable_yet_for_each(tmp_path, capsys):
    small = tmp_path / "small"
    ResultsTable(small).append(realistic_rows(n_random=0)[:2])  # one configuration, seed 0, two fidelities
    out = tmp_path / "results"
    assert CLAIMS.main(["--claim", "all", "--table", str(small), "--out", str(out)]) == 0
    digest = ResultsTable(small).content_hash()
    headline = next(s for s in SCENARIOS if s.headline)
    for name in CLAIMS.CLAIMS:
        md = (out / f"claim_{name}.md").read_text()
        assert _verdict(md).startswith("not testable yet: "), (name, _verdict(md))
        assert digest in md and f"scenario: `{headline.name}`" in md and f"`{headline.budget}`" in md
    assert "not testable yet" in capsys.readouterr().out


def test_surrogate_claims_run_and_record_the_surrogate_manifest_hash(table, surrogate, tmp_path):
    out = tmp_path / "results"
    args = [
        *NEWS,
        "--claim",
        ",".join(SURROGATE_CLAIMS),
        "--table",
        str(table),
        "--surrogate",
        str(surrogate),
        "--out",
        str(out),
        "--seeds",
        "0-1",
        "--max-evals",
        "6",
        "--ablation-seeds",
        "0",
        "--generations",
        "2",
        "--stage2-evals",
        "3",
    ]
    assert CLAIMS.main(args) == 0
    manifest_hash = hashlib.sha256((surrogate / "manifest.json").read_bytes()).hexdigest()
    for name in SURROGATE_CLAIMS:
        md = (out / f"claim_{name}.md").read_text()
        verdict = _verdict(md)
        assert not verdict.startswith("not testable yet: needs a surrogate"), (name, verdict)
        assert manifest_hash in md and "matches the table" in md
    screening = json.loads((out / "claim_screening.json").read_text())["numbers"]
    assert screening["n_configs"] == 45 and 0 <= screening["top20"]["hit_rate"] <= 1
    reach = json.loads((out / "claim_evals_to_target.json").read_text())["numbers"]["evals_to_target"]
    assert set(reach) == {"autoqra", "random", "smac-hpo", "autoqra+screen"} and all(
        len(v) == 2 for v in reach.values()
    )
    assert (out / "claim_evals_to_target_evaluations.csv").stat().st_size > 0
    assert json.loads((out / PICK).read_text())["bits"]


def test_a_surrogate_of_another_table_is_refused_unless_allowed(table, surrogate, tmp_path):
    other = tmp_path / "other"
    ResultsTable(other).append(realistic_rows(n_random=2, repeats=0))
    out = tmp_path / "results"
    CLAIMS.main(
        [*NEWS, "--claim", "screening", "--table", str(other), "--surrogate", str(surrogate), "--out", str(out)]
    )
    verdict = _verdict((out / "claim_screening.md").read_text())
    assert verdict.startswith("not testable yet:") and "--allow-hash-mismatch" in verdict
    CLAIMS.main(
        [
            *NEWS,
            "--claim",
            "screening",
            "--table",
            str(other),
            "--surrogate",
            str(surrogate),
            "--out",
            str(out),
            "--allow-hash-mismatch",
        ]
    )
    md = (out / "claim_screening.md").read_text()
    assert "MISMATCH" in md and "--allow-hash-mismatch" not in _verdict(md)


def test_user_errors_exit_2_without_a_traceback(tmp_path, capsys):
    assert CLAIMS.main(["--claim", "nonsense", "--table", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown claim" in err and "table1" in err and "Traceback" not in err
    assert CLAIMS.main(["--claim", "spread", "--table", str(tmp_path / "missing")]) == 2
    assert "no table at" in capsys.readouterr().err
    assert CLAIMS.main(["--claim", "spread", "--scenario", "nowhere", "--table", str(tmp_path)]) == 2
    assert "unknown scenario" in capsys.readouterr().err


def test_the_command_line_entry_point_runs_the_package(tmp_path):
    small = tmp_path / "small"
    ResultsTable(small).append(realistic_rows(n_random=0)[:2])
    out = tmp_path / "results"
    done = subprocess.run(
        [
            sys.executable,
            str(_ROOT / "experiments" / "claims.py"),
            *NEWS,
            "--claim",
            "spread",
            "--table",
            str(small),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=_ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("spread: not testable yet") and (out / "claim_spread.md").is_file()


def test_screening_refits_out_of_fold_when_the_artifact_has_no_predictions(table, surrogate, tmp_path):
    import shutil

    bare = tmp_path / "bare"
    from qra_bench.surrogate.artifact import seal

    shutil.copytree(surrogate, bare, ignore=shutil.ignore_patterns("predictions.csv", "SHA256SUMS"))
    seal(bare)  # an artifact saved without out-of-fold predictions
    out = tmp_path / "results"
    CLAIMS.main([*NEWS, "--claim", "screening", "--table", str(table), "--surrogate", str(bare), "--out", str(out)])
    numbers = json.loads((out / "claim_screening.json").read_text())["numbers"]
    assert "refit" in numbers["source"] and numbers["n_configs"] == 45
    assert not _verdict((out / "claim_screening.md").read_text()).startswith("not testable")


def test_table1_reuses_the_recorded_pick_and_repick_searches_again(table, surrogate, tmp_path):
    """A pick is decided once, with the surrogate and table hash that chose it; later runs measure that pick
    rather than moving to whatever a refit would now prefer (which is never in the table yet)."""
    out = tmp_path / "results"
    fast = [
        *NEWS,
        "--table",
        str(table),
        "--surrogate",
        str(surrogate),
        "--out",
        str(out),
        "--generations",
        "2",
        "--stage2-evals",
        "3",
        "--claim",
        "table1",
    ]
    assert CLAIMS.main(fast) == 0
    first = json.loads((out / PICK).read_text())
    assert first["picked_by"]["table_hash"] == ResultsTable(table).content_hash()
    assert (
        first["picked_by"]["surrogate_manifest_sha256"]
        == hashlib.sha256((surrogate / "manifest.json").read_bytes()).hexdigest()
    )
    planted = {"bits": [16] * len(first["bits"]), "ranks": [16] * len(first["ranks"])}  # the 16-bit LoRA anchor
    (out / PICK).write_text(json.dumps(planted) + "\n")
    assert CLAIMS.main(fast) == 0
    numbers = json.loads((out / "claim_table1.json").read_text())["numbers"]
    assert numbers["autoqra_pick"]["bits"] == planted["bits"]
    assert numbers["verdict"]["fits"] is False  # 16-bit LoRA is over the uniform-4bit budget: never supported
    assert json.loads((out / "claim_table1.json").read_text())["verdict"].startswith("not supported — ")
    assert "reused" in (out / "claim_table1.md").read_text()
    assert CLAIMS.main(fast + ["--repick"]) == 0
    again = json.loads((out / PICK).read_text())
    assert again["bits"] == first["bits"] and again["ranks"] == first["ranks"]


def _table1_with_planted_pick(tmp_path: Path, advantage: float) -> dict:
    """Run the table1 claim on the uniform anchors plus a mixed pick measured at 3 seeds whose mean is
    ``advantage`` nats better than the best fitting uniform configuration."""
    memory = standin_memory()
    space = memory.space
    rows = realistic_rows(n_random=0)
    budget = memory.total_bytes(space.uniform(4, max(space.ranks)))
    full = [r for r in rows if r.fidelity_frac == 1.0]
    means: dict = {}
    for r in full:
        means.setdefault((r.bits, r.ranks), []).append(r.eval_loss)
    fitting = [np.mean(v) for (b, k), v in means.items() if memory.total_bytes(QRConfig(b, k)) <= budget]
    half = space.n_blocks // 2
    pick = space.config((4,) * half + (3,) * (space.n_blocks - half), (16,) * half + (8,) * (space.n_blocks - half))
    assert memory.total_bytes(pick) <= budget
    centre = min(fitting) - advantage
    rows += [
        trial_row(memory, pick, seed, frac, centre + 0.002 * (seed - 1)) for seed in (0, 1, 2) for frac in (0.5, 1.0)
    ]
    path = tmp_path / f"table-{advantage:g}"
    ResultsTable(path).append(rows)
    out = tmp_path / f"results-{advantage:g}"
    out.mkdir()
    (out / PICK).write_text(json.dumps({"bits": list(pick.bits), "ranks": list(pick.ranks)}) + "\n")
    assert CLAIMS.main([*NEWS, "--claim", "table1", "--table", str(path), "--out", str(out)]) == 0
    record = json.loads((out / "claim_table1.json").read_text())
    assert record["numbers"]["rows"][-1]["n_seeds"] == 3 and record["numbers"]["rows"][-1]["bits"] == list(pick.bits)
    assert record["verdict"] == _verdict((out / "claim_table1.md").read_text())
    return record


def test_table1_is_not_supported_unless_the_pick_beats_the_best_fitting_uniform_by_2_se(tmp_path):
    """A recorded pick needs no surrogate to be measured; its verdict compares it with the best fitting uniform
    configuration (2 SE of the difference), not with uniform 4-bit."""
    close = _table1_with_planted_pick(tmp_path, advantage=0.0005)  # better, but well within 2 SE
    assert close["verdict"].startswith("not supported — ") and "2 SE" in close["verdict"]
    assert close["numbers"]["verdict"]["beats_best_fitting_uniform"] is False
    far = _table1_with_planted_pick(tmp_path, advantage=0.2)  # also better than 16-bit LoRA here
    assert far["verdict"].startswith("supported — ")
    assert far["numbers"]["verdict"]["beats_best_fitting_uniform"] is True
    assert far["numbers"]["verdict"]["within_2se_of_16bit_lora"] is True


def test_a_scenario_table_named_by_path_is_that_scenario_not_the_headline(tmp_path, monkeypatch):
    """``--table <data root>/tables/tiny-news`` without ``--scenario`` is the tiny-news scenario (its budget and
    surrogate), not the headline's budget applied to another table."""
    monkeypatch.setenv("QRA_BENCH_DATA", str(tmp_path))  # a data root holding a small tiny-news table
    table = tmp_path / "tables" / "tiny-news"
    ResultsTable(table).append(realistic_rows(n_random=0)[:2])
    ctx = CLAIMS.context(CLAIMS.parser().parse_args(["--table", str(table)]))
    assert ctx.scenario.name == "tiny-news" and ctx.budget_name == "uniform-4bit" and not ctx.table_given
    assert ctx.surrogate_path == str(tmp_path / "surrogates" / "tiny-news" / "xgb")
    assert (
        ctx.command("spread", False, CLAIMS.RESULTS) == ".venv/bin/python experiments/claims.py --claim spread "
        "--scenario tiny-news"
    )
    other = CLAIMS.context(CLAIMS.parser().parse_args(["--table", str(table), "--scenario", "tiny-cipher"]))
    assert other.scenario.name == "tiny-cipher" and other.table_given and other.surrogate_path is None
