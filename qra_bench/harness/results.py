"""What a benchmark answers: the :class:`Result` of an objective call, a backend's :class:`Answer` it is made from,
the :class:`CostModel` of predicted costs, the metrics, and the errors of a refused question."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd

from qra_bench.errors import QRBenchError
from qra_bench.memory import MemoryBreakdown
from qra_bench.space import QRConfig

__all__ = ["FRAC_DIGITS", "METRICS", "Answer", "CostModel", "InfeasibleConfigError", "NotInTableError", "Result"]

#: Metrics a result carries, and whether higher is better.
METRICS: dict[str, bool] = {"accuracy": True, "eval_loss": False}
FRAC_DIGITS = 6  # fidelity fractions are matched after rounding (the table stores step / max_steps)


class NotInTableError(QRBenchError):
    """The table backend was asked for a configuration or fidelity that the table does not hold."""


class InfeasibleConfigError(QRBenchError):
    """A configuration exceeds the benchmark's memory budget."""


@dataclass(frozen=True)
class Answer:
    """A backend's values for one ``(config, fidelity, seed)``; the benchmark adds the memory and budget.

    Fields as in :class:`Result`.
    """

    backend: str
    accuracy: float
    eval_loss: float
    cost_s: float
    cost_kind: str
    seeds: tuple[int, ...] = ()
    exact_seed: bool = True
    accuracy_std: Optional[float] = None
    eval_loss_std: Optional[float] = None


@dataclass(frozen=True)
class Result:
    """One answer of :meth:`Benchmark.objective`.

    Attributes
    ----------
    accuracy, eval_loss
        Task accuracy (fraction) and evaluation loss (nats per target token); NaN where the backend has no
        value (e.g. no surrogate of that metric).
    accuracy_std, eval_loss_std
        The surrogate's predictive standard deviations; None for measured answers.
    metric
        The metric :attr:`quality` is made of (higher quality is always better).
    cost_s
        Simulated cost of obtaining the answer (seconds); ``cost_kind`` says whether it was ``"measured"``
        (table row or live trial) or ``"predicted"`` (:class:`CostModel`), NaN when the table has no timing.
    memory
        Itemized bytes of the configuration under the benchmark's memory model.
    backend
        ``"table"``, ``"surrogate"`` or ``"live"``: which backend answered.
    seeds, exact_seed
        The trial seeds the values come from (a table miss on the seed averages the table's seeds).
    """

    config: QRConfig
    fidelity: float
    seed: int
    accuracy: float
    eval_loss: float
    metric: str
    cost_s: float
    cost_kind: str
    memory: MemoryBreakdown
    budget_bytes: int
    backend: str
    seeds: tuple[int, ...] = ()
    exact_seed: bool = True
    accuracy_std: Optional[float] = None
    eval_loss_std: Optional[float] = None

    @property
    def quality(self) -> float:
        """What an optimizer is told: ``metric`` if higher is better, else its negative."""
        value = getattr(self, self.metric)
        return float(value) if METRICS[self.metric] else -float(value)

    @property
    def memory_bytes(self) -> int:
        return self.memory.total

    def to_dict(self) -> dict[str, Any]:
        """Flat, JSON-ready record (memory as its total and terms, bytes)."""
        return {
            "config_hash": self.config.hash,
            "bits": list(self.config.bits),
            "ranks": list(self.config.ranks),
            "fidelity": self.fidelity,
            "seed": self.seed,
            "accuracy": self.accuracy,
            "eval_loss": self.eval_loss,
            "accuracy_std": self.accuracy_std,
            "eval_loss_std": self.eval_loss_std,
            "metric": self.metric,
            "quality": self.quality,
            "cost_s": self.cost_s,
            "cost_kind": self.cost_kind,
            "memory_bytes": self.memory_bytes,
            "memory_terms": dict(self.memory.terms),
            "budget_bytes": self.budget_bytes,
            "backend": self.backend,
            "seeds": list(self.seeds),
            "exact_seed": self.exact_seed,
        }


@dataclass(frozen=True)
class CostModel:
    """Predicted cost of an answer at a fidelity (seconds): the table's median ``time_total_s`` per fidelity.

    ``fractions`` are the table's fidelities (fractions of the full run) and ``median_s`` the median wall
    time of a trial up to each. Between them the cost is interpolated linearly; outside them it is
    proportional to the fidelity (``median_s[0] * f / fractions[0]`` below, likewise above).
    """

    fractions: tuple[float, ...]
    median_s: tuple[float, ...]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> "CostModel":
        times = frame[["fidelity_frac", "time_total_s"]].astype(float)
        times = times[np.isfinite(times["time_total_s"]) & (times["time_total_s"] > 0)]
        med = times.groupby(times["fidelity_frac"].round(FRAC_DIGITS))["time_total_s"].median().sort_index()
        return cls(tuple(float(f) for f in med.index), tuple(float(v) for v in med.to_numpy()))

    def seconds(self, fidelity: float) -> float:
        """Predicted seconds to reach ``fidelity``; NaN when the table recorded no times."""
        if not self.fractions:
            return math.nan
        f, s = self.fractions, self.median_s
        if fidelity <= f[0]:
            return s[0] * fidelity / f[0]
        if fidelity >= f[-1]:
            return s[-1] * fidelity / f[-1]
        return float(np.interp(fidelity, f, s))
