"""`qra-bench run`, the main job: verifies table and surrogate, prints the Table-1 analogue, writes the sweep
plot and leaves the shipped table untouched; a missing, stale or too small table is one line with exit 2.

The fast tests run on the stand-in table of the surrogate tests (made-up numbers, not results) with no real
trial (``--real-evals 0``); the slow one fine-tunes the tiny model once.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from qra_bench.table import ResultsTable

pytestmark = pytest.mark.filterwarnings("ignore:Please use `dict\\(config\\)`:DeprecationWarning")

_STANDIN = Path(__file__).resolve().parent / "search" / "standin_surrogate.py"
#: Few budgets, generations and evaluations: these tests check the job's plumbing, not search quality.
FAST = ["--real-evals", "0", "--budgets", "2", "--generations", "2", "--evals", "4"]


def _standin():
    spec = importlib.util.spec_from_file_location("main_job_standin_surrogate", _STANDIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _uniform_rows(fixtures, bits: int, rank: int, seeds=(0, 1)):
    """Stand-in rows of a uniform configuration, built like ``standin_rows`` (same memory settings)."""
    from qra_bench.arch import load_arch
    from qra_bench.memory import MemoryModel, MemorySettings

    template = fixtures.standin_rows(n_configs=1, seeds=(0,), fractions=(1.0,))[0]
    settings = MemorySettings(
        backend=fixtures.BACKEND,
        weight_dtype_bytes=4,
        meta_dtype_bytes=4,
        lora_dtype_bytes=4,
        grad_dtype_bytes=4,
        optimizer_state_bytes=4,
        batch_size=16,
        seq_len=97,
        activation_dtype_bytes=4,
    )
    memory = MemoryModel(load_arch(fixtures.ARCH), settings)
    cfg = memory.space.uniform(bits, rank)
    rows = []
    for seed in seeds:
        acc = fixtures.standin_accuracy(cfg, seed, 1.0)
        rows.append(
            dataclasses.replace(
                template,
                config_hash=cfg.hash,
                bits=cfg.bits,
                ranks=cfg.ranks,
                avg_bits=cfg.avg_bits,
                avg_rank=cfg.avg_rank,
                seed=seed,
                accuracy=acc,
                eval_loss=2.0 - 2.0 * acc,
                mem_predicted_bytes=memory.total_bytes(cfg),
            )
        )
    return rows


@pytest.fixture(scope="module")
def standin_table(tmp_path_factory) -> Path:
    """A stand-in table: 20 configurations x 2 seeds, plus uniform 4-bit rank 16 at 2 seeds (no 16-bit rank 16)."""
    fixtures = _standin()
    table = fixtures.write_table(tmp_path_factory.mktemp("main-job") / "table")
    ResultsTable(table).append(_uniform_rows(fixtures.standin_module(), 4, 16))
    return table


@pytest.fixture(scope="module")
def unshipped_run(standin_table, tmp_path_factory):
    """The job with no surrogate shipped (it fits one, small, on the fly): (exit code, stdout, stderr, out)."""
    import contextlib
    import io

    from qra_bench import main_job
    from qra_bench.cli import main

    out = tmp_path_factory.mktemp("unshipped") / "run"
    so, se = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        mp.setattr(main_job, "FIT_PARAMS", _standin().FAST_XGB)
        try:
            main(
                [
                    "run",
                    "--table",
                    str(standin_table),
                    "--surrogate",
                    str(out.parent / "none"),
                    "--out",
                    str(out),
                    *FAST,
                ]
            )
            code = 0
        except SystemExit as exc:
            code = exc.code
    return code, so.getvalue(), se.getvalue(), out


def test_main_job_fits_a_surrogate_when_none_is_shipped(unshipped_run):
    code, stdout, err, out = unshipped_run
    assert code == 0, err
    assert "NOT SHIPPED, fitted on the fly" in stdout and "surrogate/ (fitted on the fly" in stdout
    assert (out / "surrogate" / "manifest.json").is_file() and (out / "sweep.png").is_file()


def test_main_job_prints_table1_and_writes_the_sweep_plot_without_touching_the_table(
    standin_table, unshipped_run, cli, tmp_path
):
    table, surrogate = standin_table, unshipped_run[3] / "surrogate"  # now the "shipped" one
    before = ResultsTable(table).content_hash()
    out = tmp_path / "run"
    code, stdout, err = cli(["run", "--table", str(table), "--surrogate", str(surrogate), "--out", str(out), *FAST])
    assert code == 0, err
    assert "bound to the table hash (verified)" in stdout
    assert "\n  tiny " in stdout and "\n  llama-3.1-8b " in stdout  # the budget's memory, one line each
    lines = {line.split("  ")[0].strip(): line for line in stdout.splitlines()}
    found = lines["AutoQRA (pick)"]
    uniform4 = lines["uniform 4-bit, rank 16 (QLoRA-style)"]
    fp16 = lines["16-bit LoRA, rank 16"]
    best_uniform = lines["best fitting uniform: 4-bit, rank 16"]  # the only uniform pair the table measured
    assert "not measured (--real-evals 0)" in found or "mean of" in found
    assert "mean of 2 seed(s): table" in uniform4 and "yes" in uniform4  # the budget's own configuration fits
    assert "mean of 2 seed(s): table" in best_uniform
    assert "not in table (--live-baselines runs it)" in fp16 and " NO " in fp16
    assert "eval_loss ± SE" in stdout and "the best fitting uniform configuration" in stdout
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "table1.md").is_file() and (out / "search.json").is_file()
    assert ResultsTable(table).content_hash() == before
    assert ResultsTable(out / "table").content_hash() == before  # the working copy, no trial added
    for k in range(1, 7):
        assert f"stage {k}/6" in err
    assert f"outputs in {out}/" in stdout


def test_missing_table_is_one_line_with_exit_2(cli, tmp_path):
    code, stdout, err = cli(["run", "--table", str(tmp_path / "nope"), "--out", str(tmp_path / "run"), *FAST])
    assert code == 2
    error = [line for line in err.splitlines() if line.startswith("qra-bench: error:")]
    assert len(error) == 1 and "no results table at" in error[0] and "qra-bench collect" in error[0]
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_too_small_table_is_one_line_with_exit_2(cli, tmp_path):
    table = _standin().write_table(tmp_path / "small", n_configs=3)  # 3 configurations x 2 seeds
    code, _, err = cli(["run", "--table", str(table), "--out", str(tmp_path / "run"), *FAST])
    assert code == 2
    assert "has 6 full-fidelity trials; the main job needs at least 10" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_stale_table_card_is_one_line_with_exit_2(cli, tmp_path):
    table = _standin().write_table(tmp_path / "small", n_configs=3)
    (table / "TABLE.md").write_text("- content hash: `" + "0" * 64 + "`\n")
    code, _, err = cli(["run", "--table", str(table), "--min-trials", "1", *FAST])
    assert code == 2
    assert "the card is stale" in err and "qra-bench table report" in err


@pytest.mark.slow
def test_main_job_with_one_real_trial_keeps_the_shipped_table(cli, tmp_path):
    """One short real fine-tune of tiny (4 steps) through AutoQRA, rows into the run's copy of the table."""
    from qra_bench.defaults import DEFAULT_SURROGATE, DEFAULT_TABLE

    repo = Path(__file__).resolve().parents[1]
    table, surrogate = repo / DEFAULT_TABLE, repo / DEFAULT_SURROGATE
    if not table.is_dir():
        pytest.skip(f"no shipped table at {table}")
    before = ResultsTable(table).content_hash()
    out = tmp_path / "run"
    args = [
        "run",
        "--table",
        str(table),
        "--surrogate",
        str(surrogate),
        "--out",
        str(out),
        "--real-evals",
        "1",
        "--steps",
        "4",
        "--budgets",
        "3",
        "--generations",
        "3",
        "--min-trials",
        "1",
    ]
    code, stdout, err = cli(args)
    assert code == 0, err
    assert "real trial 1/1 done" in err and "real trial(s) of this run" in stdout
    assert ResultsTable(table).content_hash() == before
    assert len(ResultsTable(out / "table").read()) > len(ResultsTable(table).read())
