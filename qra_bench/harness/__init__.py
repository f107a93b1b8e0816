"""Benchmarks: ``objective(config, fidelity, seed)`` from a results table, its surrogate or live trials under a
memory budget, with a simulated cost clock; and the runner (optimizers x seeds x budgets -> anytime curves,
leaderboard with paired Wilcoxon tests, plots).

Typical use::

    from qra_bench.harness import Benchmark, BenchSpec, run_benchmark

    bench = Benchmark.load("tiny-news", backend="table", budget="uniform-4bit")
    result = bench.objective(bench.pool()[0], fidelity=1.0, seed=0)   # Result: accuracy, eval_loss, cost_s, ...
    report = run_benchmark(BenchSpec(benchmark="tiny-news", optimizers=("random", "autoqra"), seeds=(0, 1, 2)),
                           out="runs/demo")

Importing this package registers the adapters ``optuna-tpe``, ``smac`` and ``pool-random``. ``__all__`` is the
public surface; the records and helpers stay importable from ``benchmark`` (which re-exports those of ``results``
and ``backends``), ``spec``, ``runner``, ``report`` and ``outside_optimizers``.
"""

from qra_bench.harness.benchmark import (
    BENCHMARK_BACKENDS,
    METRICS,
    Benchmark,
    InfeasibleConfigError,
    NotInTableError,
    Result,
    available_benchmarks,
)
from qra_bench.harness import outside_optimizers  # noqa: F401  (registers optuna-tpe, smac and pool-random)
from qra_bench.harness.runner import BenchReport, load_plugin, run_benchmark
from qra_bench.harness.spec import BenchSpec

__all__ = [
    "BENCHMARK_BACKENDS",
    "METRICS",
    "BenchReport",
    "BenchSpec",
    "Benchmark",
    "InfeasibleConfigError",
    "NotInTableError",
    "Result",
    "available_benchmarks",
    "load_plugin",
    "run_benchmark",
]
