"""The benchmark runner: optimizers x seeds x budgets on one benchmark, against a simulated clock.

Each run (optimizer, budget, seed) builds the optimizer with that seed, then repeats ask -> objective -> tell
until the simulated clock (the sum of the answers' costs, seconds) would pass ``max_cost_s`` or ``max_evals``
answers were told. An answer that would end after ``max_cost_s`` is not told and does not count: the run
stopped before it finished. The objective's trial seed is the run's seed (on the surrogate backend it changes
nothing; on the table backend a seed the table lacks is averaged over the seeds it has).

Backends: ``surrogate`` (the default) answers any configuration. ``table`` answers only configurations in
the table, so it runs only *pool-based* optimizers: objects with a ``set_pool(configs)`` method, which the
runner calls with :meth:`Benchmark.pool` before the first ask (``pool-random`` is one); any other optimizer
is refused before anything runs. ``table+live`` runs a real trial for every configuration the table lacks.

Outputs under ``out`` (see :func:`~qra_bench.harness.report.write_outputs`): ``evaluations.csv`` (every told answer), ``curves_cost.csv``
and ``curves_evals.csv`` (mean and standard error of best-so-far over seeds), ``runs.csv``, ``leaderboard.csv``
and ``leaderboard.md``, ``bench.json`` and the PNG plots. Everything but ``runs.csv``' optimizer wall times and
``bench.json``'s timing is a function of the spec: the same spec gives byte-identical files.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import math
import re
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import pandas as pd

from qra_bench.errors import QRBenchError
from qra_bench.harness.benchmark import Benchmark, PathLike
from qra_bench.harness.report import leaderboard, write_outputs
from qra_bench.harness.spec import BenchSpec, Evaluation, RunRecord
from qra_bench.search import make_optimizer
from qra_bench.space import QRConfig

__all__ = ["BenchReport", "load_plugin", "run_benchmark", "run_one"]

_PLUGINS: dict[str, Any] = {}


def load_plugin(spec: str) -> Any:
    """Import a module by dotted name or a ``.py`` file by path (once per process), so that the optimizers it
    registers become available to the runner."""
    key = str(Path(spec).resolve()) if spec.endswith(".py") else spec
    if key in _PLUGINS:
        return _PLUGINS[key]
    if spec.endswith(".py"):
        path = Path(spec)
        if not path.is_file():
            raise QRBenchError(f"plugin file {spec!r} does not exist")
        name = f"qra_bench_plugin_{re.sub(r'[^0-9a-zA-Z_]', '_', path.stem)}_{len(_PLUGINS)}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise QRBenchError(f"plugin file {spec!r} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(spec)
        except ModuleNotFoundError as exc:
            raise QRBenchError(f"cannot import plugin module {spec!r}: {exc}") from None
    _PLUGINS[key] = module
    return module


@dataclass
class BenchReport:
    """What :func:`run_benchmark` returns: the spec, every run, the leaderboard and the files written."""

    spec: BenchSpec
    runs: list[RunRecord]
    leaderboard: pd.DataFrame
    files: list[Path]
    benchmarks: dict[str, Benchmark]


# ---------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------
def _is_pool_based(opt: Any) -> bool:
    return callable(getattr(opt, "set_pool", None))


def _build(name: str, bench: Benchmark, seed: int, spec: BenchSpec) -> Any:
    kw = dict(spec.optimizer_kwargs.get(name, {}))
    if bench.priors is not None:
        kw.setdefault("priors", bench.priors)
    return make_optimizer(name, bench.space, bench.memory_model, bench.budget, seed, **kw)


def run_one(name: str, bench: Benchmark, seed: int, spec: BenchSpec) -> RunRecord:
    """One run of optimizer ``name`` with ``seed`` on ``bench`` (its budget) until the clock or evals run out."""
    opt = _build(name, bench, seed, spec)
    if _is_pool_based(opt):
        opt.set_pool(bench.pool(spec.fidelity))
    evals: list[Evaluation] = []
    clock, best, wall = 0.0, math.nan, 0.0
    stopped_by = "max_evals"
    while spec.max_evals is None or len(evals) < spec.max_evals:
        t0 = time.perf_counter()
        cfg: QRConfig = opt.ask()
        wall += time.perf_counter() - t0
        result = bench.objective(cfg, spec.fidelity, seed)
        if not math.isfinite(result.cost_s) and math.isfinite(spec.max_cost_s):
            raise QRBenchError(
                f"benchmark {bench.name!r} has no timing for this answer (no time_total_s in its "
                "table); run with max cost inf and max evals N"
            )
        if clock + result.cost_s > spec.max_cost_s:
            stopped_by = "max_cost"
            break
        clock += result.cost_s
        quality = result.quality
        t0 = time.perf_counter()
        opt.tell(cfg, quality)  # the quality only: an optimizer never learns which backend answered
        wall += time.perf_counter() - t0
        if math.isfinite(quality) and not quality <= best:  # `not <=` also replaces the initial NaN
            best = quality
        evals.append(
            Evaluation(
                optimizer=name,
                budget=bench.budget.name,
                seed=seed,
                eval=len(evals) + 1,
                clock_s=clock,
                cost_s=result.cost_s,
                quality=quality,
                best_so_far=best,
                accuracy=result.accuracy,
                eval_loss=result.eval_loss,
                memory_bytes=result.memory_bytes,
                backend=result.backend,
                config_hash=cfg.hash,
                bits=",".join(map(str, cfg.bits)),
                ranks=",".join(map(str, cfg.ranks)),
            )
        )
    return RunRecord(
        optimizer=name,
        budget=bench.budget.name,
        seed=seed,
        evaluations=tuple(evals),
        final_best=best,
        clock_s=clock,
        stopped_by=stopped_by,
        optimizer_wall_s=wall,
    )


def run_benchmark(
    spec: BenchSpec,
    out: Optional[PathLike] = None,
    *,
    plots: bool = True,
    progress: Optional[Callable[[str], None]] = None,
) -> BenchReport:
    """Run every (budget, optimizer, seed) of ``spec``; write the outputs under ``out`` when given.

    Every optimizer name and budget is checked (and, on the table backend, every optimizer is checked to be
    pool-based) before the first run, so a typo fails in a second, not after an hour.
    """
    from qra_bench.harness import outside_optimizers  # noqa: F401  (registers optuna-tpe, smac, pool-random)
    from qra_bench.search import available_optimizers

    spec.check()
    known = set(available_optimizers())
    unknown = [n for n in spec.optimizers if n not in known]
    if unknown:
        raise QRBenchError(
            f"unknown optimizer(s) {', '.join(map(repr, unknown))}; available: {', '.join(sorted(known))}"
        )
    base = Benchmark.load(spec.benchmark, spec.backend, spec.budgets[0], metric=spec.metric, surrogate=spec.surrogate)
    spec = dataclasses.replace(spec, metric=base.metric)  # None -> the task's main metric
    benches = {b: base.with_budget(b) for b in spec.budgets}
    if spec.backend == "table":
        not_pool = [n for n in spec.optimizers if not _is_pool_based(_build(n, base, spec.seeds[0], spec))]
        if not_pool:
            raise QRBenchError(
                f"backend 'table' answers only configurations in the table, so it runs pool-based optimizers (with "
                f"set_pool, e.g. pool-random); {', '.join(not_pool)} propose anywhere in the space: use --backend "
                "surrogate (default) or table+live"
            )
    runs: list[RunRecord] = []
    for budget, bench in benches.items():
        for name in spec.optimizers:
            for seed in spec.seeds:
                if progress:
                    progress(f"{budget} {name} seed {seed}")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # ConfigSpace's, from inside SMAC3
                    runs.append(run_one(name, bench, seed, spec))
    board = leaderboard(runs, spec)
    files = write_outputs(spec, runs, board, benches, Path(out), plots=plots) if out is not None else []
    return BenchReport(spec=spec, runs=runs, leaderboard=board, files=files, benchmarks=benches)
