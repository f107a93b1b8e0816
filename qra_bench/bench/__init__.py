"""Benchmarks: ``objective(config, fidelity, seed)`` from a results table, its surrogate or live trials under a
memory budget, with a simulated cost clock; and the runner (optimizers x seeds x budgets -> anytime curves,
leaderboard with paired Wilcoxon tests, plots).

Typical use::

    from qra_bench.bench import Benchmark, BenchSpec, run_benchmark

    bench = Benchmark.load("tiny-news", backend="table", budget="uniform-4bit")
    result = bench.objective(bench.pool()[0], fidelity=1.0, seed=0)   # Result: accuracy, eval_loss, cost_s, ...
    report = run_benchmark(BenchSpec(benchmark="tiny-news", optimizers=("random", "autoqra"), seeds=(0, 1, 2)),
                           out="runs/demo")

Importing this package registers the adapters ``optuna-tpe``, ``smac`` and ``pool-random``.
"""

from qra_bench.bench.benchmark import (BACKENDS, METRICS, Benchmark, CostModel, InfeasibleConfigError, NotInTableError,
                                       Result, available_benchmarks, resolve_table)
from qra_bench.bench.adapters import OptunaOptimizer, PoolRandomSearch
from qra_bench.bench.runner import (DEFAULT_OPTIMIZERS, BenchReport, BenchSpec, Evaluation, RunRecord, load_plugin,
                                    parse_duration, run_benchmark)

__all__ = [
    "BACKENDS", "DEFAULT_OPTIMIZERS", "METRICS",
    "BenchReport", "BenchSpec", "Benchmark", "CostModel", "Evaluation", "InfeasibleConfigError", "NotInTableError",
    "OptunaOptimizer", "PoolRandomSearch", "Result", "RunRecord",
    "available_benchmarks", "load_plugin", "parse_duration", "resolve_table", "run_benchmark",
]
