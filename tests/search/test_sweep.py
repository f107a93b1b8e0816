"""`qra-bench sweep`: one feasible, reproducible answer per budget, flagged outside the table's support,
written as CSV, JSON and a plot; budget lists and ranges parse or fail with one line.

The surrogate is fitted on the stand-in table of the surrogate tests (made-up numbers, not results).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qra_bench.errors import QRBenchError
from qra_bench.search.surrogate_search import load_problem
from qra_bench.space import QRConfig
from qra_bench.sweep import SWEEP_SETTINGS, parse_budgets, run_sweep, table_support
from standin_surrogate import table_and_surrogate

pytestmark = pytest.mark.filterwarnings("ignore:Please use `dict\\(config\\)`:DeprecationWarning")

# The tiny model's activations dominate its memory, so budgets below ~0.87 x fp16-lora fit no configuration.
BUDGETS = "0.92xfp16-lora:1.04xfp16-lora:4"


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> tuple[Path, Path]:
    return table_and_surrogate(tmp_path_factory.mktemp("sweep-standin"))


@pytest.fixture(scope="module")
def problem(standin):
    return load_problem(*standin)


@pytest.fixture(scope="module")
def swept(standin, tmp_path_factory):
    """`qra-bench sweep` over BUDGETS into a folder, run in-process: (exit code, stdout, stderr, out folder)."""
    import contextlib
    import io

    from qra_bench.cli import main

    table, surrogate = standin
    out = tmp_path_factory.mktemp("sweep-out")
    so, se = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        try:
            main(
                [
                    "sweep",
                    "--surrogate",
                    str(surrogate),
                    "--table",
                    str(table),
                    "--budgets",
                    BUDGETS,
                    "--method",
                    "autoqra",
                    "--seed",
                    "0",
                    "--out",
                    str(out),
                ]
            )
            code = 0
        except SystemExit as exc:
            code = exc.code
    return code, so.getvalue(), se.getvalue(), out


def test_sweep_prints_one_line_per_budget_and_the_wall_time(swept):
    code, stdout, err, _ = swept
    assert code == 0, err
    lines = stdout.splitlines()
    rows = [l for l in lines if l.split()[0].endswith("xfp16-lora")]
    assert [r.split()[0] for r in rows] == ["0.92xfp16-lora", "0.96xfp16-lora", "1xfp16-lora", "1.04xfp16-lora"]
    assert all("±" in r and ("ok" in r or "EXTRAPOLATED" in r) for r in rows)
    assert lines[-1].startswith("4 budgets in ") and " s wall" in lines[-1]


def test_sweep_writes_csv_json_and_png_with_feasible_configurations(swept, problem):
    _, _, _, out = swept
    frame = pd.read_csv(out / "sweep.csv")
    doc = json.loads((out / "sweep.json").read_text())
    assert len(frame) == len(doc["points"]) == 4 and frame["feasible"].all()
    for p in doc["points"]:
        cfg = QRConfig(bits=p["bits"], ranks=p["ranks"])
        assert problem.memory_model.total_bytes(cfg) == p["memory_bytes"] <= p["budget_bytes"]
        assert p["avg_bits"] == pytest.approx(cfg.avg_bits) and np.isfinite(p["predicted_std"])
    assert doc["support"]["quantile"] == 90 and "surrogate prediction" in doc["source"]
    png = (out / "sweep.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_same_seed_gives_the_same_sweep(problem):
    budgets = parse_budgets("0.9xfp16-lora,1.0xfp16-lora", problem.memory_model)
    a = run_sweep(problem, budgets, seed=3)
    b = run_sweep(problem, budgets, seed=3)
    assert a.points == b.points


def test_predicted_front_never_falls_as_the_budget_grows(swept):
    _, _, _, out = swept
    frame = pd.read_csv(out / "sweep.csv").sort_values("budget_bytes")
    assert np.all(np.diff(frame["predicted_mean"].to_numpy()) >= 0)


def test_infeasible_budgets_are_reported_not_fatal(problem):
    result = run_sweep(problem, parse_budgets("0.3xfp16-lora,uniform-4bit", problem.memory_model))
    low, four = result.points
    assert not low.feasible and "below the smallest configuration" in low.support_reasons
    assert four.feasible and four.memory_bytes <= four.budget_bytes


def test_support_flags_memory_distance_and_std_outside_the_table(problem):
    support = table_support(problem)
    bi, ri, observed = problem.table_configs()
    assert support.n_configs == len(bi) == 20 and np.isfinite(observed).all()
    inside = int(np.argmin(np.abs(support.memory - np.median(support.memory))))
    assert support.nearest(bi[inside], ri[inside]) == 0
    assert support.reasons(int(support.memory[inside]), 0, 0.0) == []
    assert "memory" in support.reasons(support.memory_max + 1, 0, 0.0)[0]
    assert "edits from table" in support.reasons(support.memory_min, int(support.distance_threshold) + 1, 0.0)[0]
    assert "std" in support.reasons(support.memory_min, 0, support.std_threshold * 1.01)[0]
    assert support.reasons(support.memory_min, 0, support.std_threshold) == []  # the threshold itself is inside


def test_budget_ranges_and_lists_parse(problem):
    mm = problem.memory_model
    named = parse_budgets("0.5xfp16-lora:1.0xfp16-lora:3", mm)
    assert [b.name for b in named] == ["0.5xfp16-lora", "0.75xfp16-lora", "1xfp16-lora"]
    assert [b.bytes for b in named] == [mm.budget(n).bytes for n in ("0.5xfp16-lora", "0.75xfp16-lora", "fp16-lora")]
    absolute = parse_budgets("uniform-2bit:uniform-4bit:3", mm)
    lo, hi = mm.budget("uniform-2bit").bytes, mm.budget("uniform-4bit").bytes
    assert absolute[0].bytes == lo and absolute[-1].bytes == hi and absolute[1].name == str(absolute[1].bytes)
    assert [b.name for b in parse_budgets("uniform-4bit, 70MiB", mm)] == ["uniform-4bit", "70MiB"]
    for bad, message in (
        ("0.5xfp16-lora:1.0xfp16-lora:x", "count 'x'"),
        ("uniform-4bit:huge:3", "cannot parse budget"),
        (",", "no budgets"),
    ):
        with pytest.raises(QRBenchError, match=message):
            parse_budgets(bad, mm)


def test_bad_budgets_are_one_line_errors_with_exit_2(standin, cli):
    table, surrogate = standin
    code, stdout, err = cli(["sweep", "--surrogate", str(surrogate), "--table", str(table), "--budgets", "lots"])
    assert code == 2 and stdout == "" and err.count("\n") == 1 and "cannot parse budget 'lots'" in err
    code, _, err = cli(["sweep", "--surrogate", str(surrogate) + "-missing", "--table", str(table)])
    assert code == 2 and err.count("\n") == 1 and "no surrogate at" in err


@pytest.mark.slow
def test_thirty_budgets_answer_within_a_minute(problem):
    budgets = parse_budgets("0.87xfp16-lora:1.0xfp16-lora:30", problem.memory_model)
    t0 = time.perf_counter()
    result = run_sweep(problem, budgets, settings=SWEEP_SETTINGS)
    assert time.perf_counter() - t0 < 60
    assert all(p.feasible for p in result.points)
