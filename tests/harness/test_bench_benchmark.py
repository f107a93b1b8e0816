"""Benchmark: the table, surrogate and live backends, the memory budget, the cost model, name resolution."""

from __future__ import annotations

import math
import shutil
import warnings

import numpy as np
import pytest

from qra_bench.harness import Benchmark, InfeasibleConfigError, NotInTableError
from qra_bench.harness.benchmark import CostModel
from qra_bench.errors import InfeasibleBudgetError, QRBenchError
from qra_bench.space import QRConfig
from qra_bench.surrogate import SurrogateArtifact
from qra_bench.table import ResultsTable


@pytest.fixture(scope="module")
def table_bench(table_path):
    return Benchmark.load(table_path, backend="table", budget="fp16-lora")


@pytest.fixture(scope="module")
def rows(table_path):
    return ResultsTable(table_path).read()


def _config(row) -> QRConfig:
    return QRConfig(bits=row["bits"], ranks=row["ranks"])


def test_table_backend_returns_the_tables_row(table_bench, rows):
    for _, row in rows.iloc[[0, 7, 33]].iterrows():
        result = table_bench.objective(_config(row), fidelity=row["fidelity_frac"], seed=int(row["seed"]))
        assert result.backend == "table" and result.exact_seed and result.seeds == (int(row["seed"]),)
        assert result.accuracy == row["accuracy"] and result.eval_loss == row["eval_loss"]
        assert result.quality == row["accuracy"]
        assert result.cost_s == row["time_total_s"] and result.cost_kind == "measured"
        # The rebuilt memory model reproduces the bytes the trials recorded, to the byte.
        assert result.memory_bytes == row["mem_predicted_bytes"] == sum(result.memory.terms.values())
        assert result.accuracy_std is None


def test_table_backend_averages_the_tables_seeds_for_a_seed_it_lacks(table_bench, rows):
    row = rows.iloc[0]
    same = rows[(rows["config_hash"] == row["config_hash"]) & (rows["fidelity_frac"] == 1.0)]
    assert sorted(same["seed"]) == [0, 1]
    result = table_bench.objective(_config(row), fidelity=1.0, seed=7)
    assert not result.exact_seed and result.seeds == (0, 1)
    assert result.accuracy == pytest.approx(same["accuracy"].mean())
    assert result.cost_s == pytest.approx(same["time_total_s"].mean())


def test_table_backend_refuses_a_configuration_or_fidelity_not_in_the_table(table_bench, rows):
    in_table = set(rows["config_hash"])
    rng = np.random.default_rng(0)
    missing = next(c for c in table_bench.space.sample_batch(rng, 50) if c.hash not in in_table)
    with pytest.raises(NotInTableError, match="not in table 'standin-bench'.*surrogate"):
        table_bench.objective(table_bench.repair(missing))
    with pytest.raises(NotInTableError, match="fidelity 0.25 is not in table .* 0.5, 1"):
        table_bench.objective(_config(rows.iloc[0]), fidelity=0.25)


def test_pool_holds_the_table_configurations_that_fit_the_budget(table_path, rows):
    bench = Benchmark.load(table_path, backend="table", budget="uniform-4bit")
    pool = bench.pool()
    assert 0 < len(pool) < rows["config_hash"].nunique()
    assert all(bench.is_feasible(c) for c in pool) and len(set(pool)) == len(pool)
    fitting = {
        h
        for h, b, r in zip(rows["config_hash"], rows["bits"], rows["ranks"])
        if bench.is_feasible(QRConfig(bits=b, ranks=r))
    }
    assert {c.hash for c in pool} == fitting
    assert all(bench.objective(c).backend == "table" for c in pool[:3])


def test_surrogate_backend_returns_the_surrogates_mean_and_std_for_any_configuration(table_path, surrogate_path, rows):
    bench = Benchmark.load(table_path, backend="surrogate", budget="uniform-4bit", surrogate=surrogate_path)
    artifact = SurrogateArtifact.load(surrogate_path)
    off_table = next(
        c for c in bench.space.sample_batch(np.random.default_rng(1), 50) if c.hash not in set(rows["config_hash"])
    )
    cfg = bench.repair(off_table)
    result = bench.objective(cfg, fidelity=1.0, seed=3)
    mean, std = artifact.predict_configs([cfg])
    assert result.backend == "surrogate" and result.accuracy == mean[0] and result.accuracy_std == std[0] > 0
    # The eval_loss surrogate beside it answers the other metric.
    assert set(bench.surrogates) == {"accuracy", "eval_loss"}
    assert math.isfinite(result.eval_loss) and result.eval_loss_std > 0
    # Predicted cost: the table's median trial time at that fidelity, the same for every configuration.
    assert result.cost_kind == "predicted"
    assert result.cost_s == pytest.approx(rows[rows["fidelity_frac"] == 1.0]["time_total_s"].median())
    assert bench.objective(bench.pool()[0]).cost_s == result.cost_s
    low = bench.objective(cfg, fidelity=0.5)
    assert low.cost_s < result.cost_s and low.accuracy != result.accuracy


def test_an_over_budget_configuration_is_rejected_and_repair_makes_it_fit(table_path):
    bench = Benchmark.load(table_path, backend="table", budget="uniform-4bit")
    big = bench.space.uniform(16, 16)
    assert not bench.is_feasible(big)
    with pytest.raises(InfeasibleConfigError, match=r"needs [\d,]+ bytes; budget 'uniform-4bit'.*allows"):
        bench.objective(big)
    assert bench.is_feasible(bench.repair(big))


def test_a_budget_below_the_smallest_configuration_is_refused_at_load(table_path):
    with pytest.raises(InfeasibleBudgetError, match="0.1xfp16-lora.*below its smallest configuration"):
        Benchmark.load(table_path, backend="table", budget="0.1xfp16-lora")
    bench = Benchmark.load(table_path, backend="table", budget="fp16-lora")
    with pytest.raises(InfeasibleBudgetError):
        bench.with_budget("0.1xfp16-lora")


def test_the_eval_loss_metric_is_told_negated(table_path, rows):
    bench = Benchmark.load(table_path, backend="table", budget="fp16-lora", metric="eval_loss")
    result = bench.objective(
        _config(rows.iloc[1]), fidelity=rows.iloc[1]["fidelity_frac"], seed=int(rows.iloc[1]["seed"])
    )
    assert result.quality == -rows.iloc[1]["eval_loss"]


def test_names_resolve_under_the_root_and_unknown_ones_list_the_available(bench_root):
    bench = Benchmark.load("standin-bench", backend="surrogate", root=bench_root)
    assert bench.name == "standin-bench" and "accuracy" in bench.surrogates
    with pytest.raises(QRBenchError, match="unknown benchmark 'no-such'.*available: standin-bench"):
        Benchmark.load("no-such", root=bench_root)
    with pytest.raises(QRBenchError, match="unknown backend 'tabel'; allowed: table, surrogate, live, table\\+live"):
        Benchmark.load("standin-bench", backend="tabel", root=bench_root)


def test_a_missing_surrogate_is_a_clear_error(table_path, tmp_path):
    with pytest.raises(QRBenchError, match="no surrogate for benchmark 'standin-bench' at .*qra-bench fit --table"):
        Benchmark.load(table_path, backend="surrogate", surrogate=tmp_path / "nothing-here")


def test_a_surrogate_of_a_changed_table_is_refused(table_path, surrogate_path, tmp_path):
    copy = tmp_path / "standin-bench"
    shutil.copytree(table_path, copy)
    extra = ResultsTable(table_path).read().iloc[0].to_dict()
    from qra_bench.table import TrialRow

    row = TrialRow.from_dict({**extra, "seed": 99})
    ResultsTable(copy).append([row])
    with pytest.raises(QRBenchError, match="content hash"):
        Benchmark.load(copy, backend="surrogate", surrogate=surrogate_path)


def test_cost_model_interpolates_between_fidelities_and_scales_outside():
    model = CostModel(fractions=(0.5, 1.0), median_s=(50.0, 80.0))
    assert model.seconds(0.5) == 50.0 and model.seconds(1.0) == 80.0
    assert model.seconds(0.75) == pytest.approx(65.0)
    assert model.seconds(0.25) == pytest.approx(25.0)
    assert math.isnan(CostModel((), ()).seconds(1.0))


@pytest.mark.slow
def test_table_plus_live_runs_a_real_trial_for_a_configuration_the_table_lacks(tmp_path):
    """A real trial of the tiny model on the headline task (about a minute on one CPU core)."""
    bench = Benchmark.load("tiny-cipher", backend="table+live", budget="fp16-lora", live_table=tmp_path / "live")
    in_table = {c.hash for c in bench.pool()}
    cfg = next(c for c in bench.space.sample_batch(np.random.default_rng(5), 50) if c.hash not in in_table)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # recipe keys an older qra-bench wrote, if any
        result = bench.objective(cfg, fidelity=1.0, seed=0)
    assert result.backend == "live" and 0 <= result.accuracy <= 1 and result.cost_kind == "measured"
    assert len(ResultsTable(tmp_path / "live").read()) == len(bench.fidelities)
    # The trial's rows are now in the benchmark's index: the same question is a table lookup.
    again = bench.objective(cfg, fidelity=1.0, seed=0)
    assert again.backend == "table" and again.accuracy == result.accuracy


def test_search_and_bench_count_a_budget_the_same_way(table_path, surrogate_path):
    """`qra-bench search` (table convention, the default) admits exactly the configurations the benchmark does;
    the bf16 convention weighs unquantized blocks and adapters differently, so it names other bytes."""
    from qra_bench.search.surrogate_search import load_problem

    bench = Benchmark.load(table_path, backend="table", budget="uniform-4bit")
    problem = load_problem(table_path, surrogate_path)
    budget = problem.memory_model.budget("uniform-4bit")
    assert budget.bytes == bench.budget.bytes
    configs = problem.space.sample_batch(np.random.default_rng(0), 200)
    admitted = [problem.memory_model.is_feasible(c, budget) for c in configs]
    assert admitted == [bench.is_feasible(c) for c in configs] and 0 < sum(admitted) < len(configs)
    bf16 = load_problem(table_path, surrogate_path, memory="bf16").memory_model
    assert bf16.budget("uniform-4bit").bytes != budget.bytes


def test_an_unknown_memory_convention_is_refused(table_path, surrogate_path):
    from qra_bench.search.surrogate_search import load_problem

    with pytest.raises(QRBenchError, match="unknown memory convention 'fp8'"):
        load_problem(table_path, surrogate_path, memory="fp8")
