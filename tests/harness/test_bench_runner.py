"""The runner: simulated clock, outputs (curves, leaderboard, plots), determinism, the table backend's pool rule,
and the leaderboard's statistics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from qra_bench.harness import BenchSpec, Benchmark, run_benchmark
from qra_bench.harness.spec import parse_duration
from qra_bench.harness.spec import Evaluation, RunRecord
from qra_bench.harness.report import leaderboard
from qra_bench.errors import QRBenchError

SMALL_SMAC = {"n_initial": 3, "challengers": 200, "local_search_iterations": 2}


def _spec(table_path, surrogate_path, **kw) -> BenchSpec:
    base = dict(
        benchmark=str(table_path),
        surrogate=str(surrogate_path),
        optimizers=("random", "evolution"),
        seeds=(0, 1, 2),
        budgets=("uniform-4bit", "uniform-3bit"),
        max_cost_s=700.0,
    )
    base.update(kw)
    return BenchSpec(**base)


@pytest.fixture(scope="module")
def report(table_path, surrogate_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-out")
    return run_benchmark(_spec(table_path, surrogate_path), out), out


def test_runner_writes_curves_leaderboard_and_plots(report):
    rep, out = report
    for name in (
        "evaluations.csv",
        "curves_cost.csv",
        "curves_evals.csv",
        "runs.csv",
        "leaderboard.csv",
        "leaderboard.md",
        "bench.json",
        "anytime_cost_uniform-4bit.png",
        "anytime_evals_uniform-3bit.png",
    ):
        assert (out / name).stat().st_size > 0, name
    assert (out / "anytime_cost_uniform-4bit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    board = pd.read_csv(out / "leaderboard.csv")
    assert len(board) == 4 and set(board["optimizer"]) == {"random", "evolution"}
    assert set(board.groupby("budget")["rank"].min()) == {1}
    assert (board["n_seeds"] == 3).all()
    non_best = board[board["optimizer"] != board["best"]]["p_wilcoxon_vs_best"].dropna()
    assert ((non_best >= 0) & (non_best <= 1)).all()
    md = (out / "leaderboard.md").read_text()
    assert "backend surrogate" in md and "## Budget uniform-4bit" in md

    curves = pd.read_csv(out / "curves_cost.csv")
    assert curves["cost_s"].max() == 700.0 and set(curves["n_runs"]) <= {0, 1, 2, 3}
    by_evals = pd.read_csv(out / "curves_evals.csv")
    assert by_evals["evals"].min() == 1


def test_the_simulated_clock_sums_costs_and_stops_before_the_budget(report):
    rep, _ = report
    for run in rep.runs:
        clocks = [e.clock_s for e in run.evaluations]
        assert clocks == pytest.approx(np.cumsum([e.cost_s for e in run.evaluations]))
        assert clocks[-1] <= 700.0 and run.stopped_by == "max_cost"
        assert len(run.evaluations) == 7  # the stand-in's median full-fidelity trial is ~97.5 s: 7 fit, not 8
        best = [e.best_so_far for e in run.evaluations]
        assert best == sorted(best) and best[-1] == max(e.quality for e in run.evaluations) == run.final_best
        assert all(e.backend == "surrogate" for e in run.evaluations)


def test_same_spec_gives_byte_identical_leaderboard_and_curves(report, table_path, surrogate_path, tmp_path):
    _, first = report
    run_benchmark(_spec(table_path, surrogate_path), tmp_path, plots=False)
    for name in ("leaderboard.csv", "leaderboard.md", "evaluations.csv", "curves_cost.csv", "curves_evals.csv"):
        assert (tmp_path / name).read_bytes() == (first / name).read_bytes(), name


def test_default_optimizers_run_with_max_evals(table_path, surrogate_path):
    spec = _spec(
        table_path,
        surrogate_path,
        optimizers=("autoqra", "random", "smac", "evolution", "optuna-tpe"),
        seeds=(0, 1),
        budgets=("uniform-4bit",),
        max_cost_s=math.inf,
        max_evals=5,
        optimizer_kwargs={"smac": SMALL_SMAC, "autoqra": {"stage1_evals": 3}},
    )
    rep = run_benchmark(spec)
    assert len(rep.runs) == 10 and all(len(r.evaluations) == 5 and r.stopped_by == "max_evals" for r in rep.runs)
    bench = rep.benchmarks["uniform-4bit"]
    for r in rep.runs:
        for e in r.evaluations:
            cfg = bench.space.config([int(x) for x in e.bits.split(",")], [int(x) for x in e.ranks.split(",")])
            assert bench.is_feasible(cfg)
    assert list(rep.leaderboard["rank"]).count(1) >= 1


def test_table_backend_runs_pool_based_optimizers_and_refuses_the_others(table_path, surrogate_path):
    with pytest.raises(QRBenchError, match="pool-based.*random.*--backend surrogate"):
        run_benchmark(_spec(table_path, surrogate_path, backend="table", optimizers=("pool-random", "random")))
    rep = run_benchmark(
        _spec(
            table_path,
            surrogate_path,
            backend="table",
            optimizers=("pool-random",),
            budgets=("uniform-4bit",),
            max_cost_s=math.inf,
            max_evals=30,
        )
    )
    pool = {c.hash for c in Benchmark.load(table_path, backend="table", budget="uniform-4bit").pool()}
    for run in rep.runs:
        hashes = [e.config_hash for e in run.evaluations]
        assert all(e.backend == "table" for e in run.evaluations) and set(hashes) <= pool
        assert len(set(hashes[: len(pool)])) == len(pool)  # a full pass over the pool before any repeat


def test_unknown_optimizer_and_bad_limits_fail_before_running(table_path, surrogate_path):
    with pytest.raises(QRBenchError, match="unknown optimizer\\(s\\) 'randon'; available: .*random"):
        run_benchmark(_spec(table_path, surrogate_path, optimizers=("randon",)))
    with pytest.raises(QRBenchError, match="finite max cost or max evals"):
        run_benchmark(_spec(table_path, surrogate_path, max_cost_s=math.inf))


def _run(name: str, seed: int, final: float) -> RunRecord:
    ev = Evaluation(
        optimizer=name,
        budget="b",
        seed=seed,
        eval=1,
        clock_s=10.0,
        cost_s=10.0,
        quality=final,
        best_so_far=final,
        accuracy=final,
        eval_loss=math.nan,
        memory_bytes=1,
        backend="surrogate",
        config_hash="h",
        bits="4",
        ranks="8",
    )
    return RunRecord(
        optimizer=name,
        budget="b",
        seed=seed,
        evaluations=(ev,),
        final_best=final,
        clock_s=10.0,
        stopped_by="max_evals",
        optimizer_wall_s=0.0,
    )


def test_leaderboard_ranks_by_mean_and_tests_pairs_over_seeds():
    runs = [_run("good", s, 0.8 + 0.01 * s) for s in range(6)] + [_run("bad", s, 0.7 + 0.005 * s) for s in range(6)]
    runs += [_run("tied", s, 0.8 + 0.01 * s) for s in range(6)]
    board = leaderboard(runs, BenchSpec(seeds=tuple(range(6)), metric="accuracy")).set_index("optimizer")
    assert board.loc["good", "rank"] == board.loc["tied", "rank"] == 1 and board.loc["bad", "rank"] == 3
    assert board.loc["good", "mean_best_accuracy"] == pytest.approx(0.825)
    assert board.loc["good", "se_best_accuracy"] == pytest.approx(
        np.std([0.8 + 0.01 * s for s in range(6)], ddof=1) / 6**0.5
    )
    best = board.loc["bad", "best"]
    assert best in ("good", "tied") and math.isnan(board.loc[best, "p_wilcoxon_vs_best"])
    # Six seeds, all in one direction: the exact two-sided p-value is 2 / 2**6.
    assert board.loc["bad", "p_wilcoxon_vs_best"] == pytest.approx(2 / 64)
    other = "tied" if best == "good" else "good"
    assert board.loc[other, "p_wilcoxon_vs_best"] == 1.0


def test_parse_duration():
    assert parse_duration("2h") == 7200 and parse_duration("90m") == 5400 and parse_duration("45s") == 45
    assert parse_duration("7200") == 7200 and math.isinf(parse_duration("inf"))
    with pytest.raises(QRBenchError, match="cannot parse duration '2 hours'"):
        parse_duration("2 hours")
