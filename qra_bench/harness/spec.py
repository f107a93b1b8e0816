"""What a benchmark run is: the spec (optimizers x seeds x budgets on one benchmark) and the records it leaves.

:class:`BenchSpec` says what to run, :func:`parse_duration` reads its simulated cost limit from text,
:class:`Evaluation` is one told answer of a run and :class:`RunRecord` one (optimizer, budget, seed) run.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from qra_bench.defaults import DEFAULT_TASK
from qra_bench.errors import QRBenchError
from qra_bench.harness.benchmark import BENCHMARK_BACKENDS

__all__ = ["DEFAULT_OPTIMIZERS", "BenchSpec", "Evaluation", "RunRecord", "parse_duration"]

DEFAULT_OPTIMIZERS: tuple[str, ...] = ("autoqra", "random", "smac", "evolution", "optuna-tpe")
_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``"2h"``, ``"90m"``, ``"45s"``, ``"7200"`` (seconds), ``"inf"`` -> seconds."""
    raw = str(text).strip().lower()
    if raw in ("inf", "none", "unlimited"):
        return math.inf
    m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)", raw)
    if not m or m.group(2) not in _DURATION_UNITS or float(m.group(1)) <= 0:
        raise QRBenchError(
            f"cannot parse duration {text!r}; give a positive number with s, m, h or d (e.g. 2h, 90m, 7200) or inf"
        )
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


# ---------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchSpec:
    """What to run.

    Parameters
    ----------
    benchmark
        A shipped table's name or a table directory (see :meth:`Benchmark.load`).
    backend
        ``surrogate`` (default), ``table`` (pool-based optimizers only), ``table+live`` or ``live``.
    optimizers, seeds, budgets
        Registered optimizer names, optimizer (and trial) seeds, budget strings.
    max_cost_s
        Simulated seconds per run (``math.inf``: none; then ``max_evals`` must be set).
    max_evals
        Told answers per run (None: no limit).
    fidelity
        Fraction of the full run every answer is at.
    metric, surrogate
        Passed to :meth:`Benchmark.load`.
    optimizer_kwargs
        Per optimizer name, extra keyword arguments of its constructor.
    """

    benchmark: str = f"tiny-{DEFAULT_TASK}"
    backend: str = "surrogate"
    optimizers: tuple[str, ...] = DEFAULT_OPTIMIZERS
    seeds: tuple[int, ...] = tuple(range(10))
    budgets: tuple[str, ...] = ("uniform-4bit",)
    max_cost_s: float = 7200.0
    max_evals: Optional[int] = None
    fidelity: float = 1.0
    metric: Optional[str] = None  # None: the table task's main metric (eval_loss for news)
    surrogate: str = "xgb"
    optimizer_kwargs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def check(self) -> None:
        if self.backend not in BENCHMARK_BACKENDS:
            raise QRBenchError(f"unknown backend {self.backend!r}; allowed: {', '.join(BENCHMARK_BACKENDS)}")
        for what, values in (("optimizers", self.optimizers), ("seeds", self.seeds), ("budgets", self.budgets)):
            if not values:
                raise QRBenchError(f"give at least one of {what}")
            if len(set(values)) != len(values):
                raise QRBenchError(f"{what} {list(values)} has repeats")
        if not self.max_cost_s > 0:
            raise QRBenchError(f"max cost must be positive seconds, got {self.max_cost_s}")
        if self.max_evals is not None and self.max_evals < 1:
            raise QRBenchError(f"max evals must be >= 1, got {self.max_evals}")
        if math.isinf(self.max_cost_s) and self.max_evals is None:
            raise QRBenchError("give a finite max cost or max evals; a run needs an end")


@dataclass(frozen=True)
class Evaluation:
    """One told answer of a run. ``clock_s`` is the simulated time when it finished (seconds);
    ``best_so_far`` the run's best quality up to and including it (NaN while all answers failed)."""

    optimizer: str
    budget: str
    seed: int
    eval: int
    clock_s: float
    cost_s: float
    quality: float
    best_so_far: float
    accuracy: float
    eval_loss: float
    memory_bytes: int
    backend: str
    config_hash: str
    bits: str
    ranks: str


@dataclass(frozen=True)
class RunRecord:
    """One (optimizer, budget, seed) run: its answers, final best quality, why it stopped, and the optimizer's
    own wall time (seconds of ask/tell, not simulated)."""

    optimizer: str
    budget: str
    seed: int
    evaluations: tuple[Evaluation, ...]
    final_best: float
    clock_s: float
    stopped_by: str
    optimizer_wall_s: float
