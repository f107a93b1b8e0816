"""The optimizer protocol shared by every search algorithm: ask/tell, the search context, the priors.

Every optimizer is an ask/tell object built from ``(space, memory_model, budget, seed, **kw)``:
``ask() -> QRConfig`` proposes a configuration, ``tell(config, result)`` reports its quality (higher is
better). The base class owns what all of them must share: the :class:`SearchContext` (the only place a search
algorithm touches :meth:`MemoryModel.repair` and :meth:`MemoryModel.is_feasible`), the history, the incumbent,
and the final feasibility gate of :meth:`Optimizer.ask`, so no optimizer can hand out an over-budget
configuration even by mistake.

Optimizers that screen candidates take a predictor (:mod:`qra_bench.search.predictors`); optimizers are
registered and built by name through :mod:`qra_bench.search.registry`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import numpy as np

from qra_bench.errors import QRBenchError
from qra_bench.memory import Budget, MemoryModel
from qra_bench.space import QRConfig, SearchSpace

if TYPE_CHECKING:  # importance.py pulls in torch; the search layer only needs its two vectors
    from qra_bench.importance import ImportancePriors

__all__ = [
    "Observation",
    "Optimizer",
    "Priors",
    "SearchContext",
    "as_priors",
    "result_value",
]


# ---------------------------------------------------------------------------------------------------------
# Priors
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Priors:
    """Per-block importance in [0, 1] (``importance_q`` fidelity, ``importance_r`` plasticity) and, if known,
    the raw measurements they were normalized from (``raw_q`` is what the LQ-LoRA baseline minimizes).

    :class:`qra_bench.importance.ImportancePriors` has the same attributes; :func:`as_priors` accepts either.
    """

    importance_q: tuple[float, ...]
    importance_r: tuple[float, ...]
    raw_q: Optional[tuple[float, ...]] = None
    raw_r: Optional[tuple[float, ...]] = None


def as_priors(obj: "Priors | ImportancePriors | None", n_blocks: int) -> Optional[Priors]:
    """Validate any object with ``importance_q``/``importance_r`` (and optionally ``raw_q``/``raw_r``)."""
    if obj is None:
        return None
    vectors: dict[str, tuple[float, ...]] = {}
    for name in ("importance_q", "importance_r", "raw_q", "raw_r"):
        values = getattr(obj, name, None)
        if values is None:
            if name.startswith("importance"):
                raise QRBenchError(f"priors need {name} ({n_blocks} numbers in [0, 1]); got none")
            continue
        arr = np.asarray(values, dtype=float)
        if arr.shape != (n_blocks,) or not np.all(np.isfinite(arr)):
            raise QRBenchError(f"priors.{name} must be {n_blocks} finite numbers, got shape {arr.shape}")
        if name.startswith("importance") and (arr.min() < 0 or arr.max() > 1):
            raise QRBenchError(
                f"priors.{name} must lie in [0, 1] (min-max normalized), got {arr.min():g}..{arr.max():g}"
            )
        vectors[name] = tuple(float(x) for x in arr)
    return Priors(
        importance_q=vectors["importance_q"],
        importance_r=vectors["importance_r"],
        raw_q=vectors.get("raw_q"),
        raw_r=vectors.get("raw_r"),
    )


# ---------------------------------------------------------------------------------------------------------
# Context: space + memory + budget + priors, and the only calls into repair / feasibility
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SearchContext:
    """Everything an operator needs to stay inside the budget.

    ``repair`` passes the importance priors (when given) to :meth:`MemoryModel.repair`, so AutoQRA's repair
    spares important blocks; without priors it lowers whatever saves the most bytes.
    """

    space: SearchSpace
    memory_model: MemoryModel
    budget: Budget
    priors: Optional[Priors] = None
    # Per-block importance the operators weigh by: the priors', or 0.5 everywhere without priors (see build).
    importance_q: np.ndarray = field(kw_only=True, repr=False)
    importance_r: np.ndarray = field(kw_only=True, repr=False)

    @classmethod
    def build(
        cls,
        space: SearchSpace,
        memory_model: MemoryModel,
        budget: "Budget | int | str",
        priors: "Priors | ImportancePriors | None" = None,
    ) -> "SearchContext":
        if (space.n_blocks, space.bits, space.ranks) != (
            memory_model.space.n_blocks,
            memory_model.space.bits,
            memory_model.space.ranks,
        ):
            raise QRBenchError(
                f"search space (bits {list(space.bits)}, ranks {list(space.ranks)}) differs from the "
                f"memory model's (bits {list(memory_model.space.bits)}, ranks "
                f"{list(memory_model.space.ranks)}); build the MemoryModel with space=..."
            )
        if isinstance(budget, str):
            budget = memory_model.budget(budget)
        elif not isinstance(budget, Budget):
            if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
                raise QRBenchError(
                    f"budget must be a Budget, a budget string or a positive number of bytes, got {budget!r}"
                )
            budget = Budget(name=f"{int(budget)}", bytes=int(budget))
        p = as_priors(priors, space.n_blocks)
        iq = np.asarray(p.importance_q if p else np.full(space.n_blocks, 0.5), dtype=float)
        ir = np.asarray(p.importance_r if p else np.full(space.n_blocks, 0.5), dtype=float)
        ctx = cls(space=space, memory_model=memory_model, budget=budget, priors=p, importance_q=iq, importance_r=ir)
        # Fail at construction, with the budget and the smallest configuration named, not on the first ask.
        ctx.repair(space.min_config())
        return ctx

    @property
    def budget_bytes(self) -> int:
        return self.budget.bytes

    @property
    def n_blocks(self) -> int:
        return self.space.n_blocks

    def repair(self, cfg: QRConfig) -> QRConfig:
        """:meth:`MemoryModel.repair` under this budget (with the priors when given)."""
        if self.priors is None:
            return self.memory_model.repair(cfg, self.budget)
        return self.memory_model.repair(cfg, self.budget, self.priors.importance_q, self.priors.importance_r)

    def repair_indices(self, bit_idx: np.ndarray, rank_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.repair(self.space.from_indices(bit_idx, rank_idx))
        return self.space.bit_index(cfg), self.space.rank_index(cfg)

    def is_feasible(self, cfg: QRConfig) -> bool:
        return self.memory_model.is_feasible(cfg, self.budget)

    def feasible_mask(self, bit_idx: np.ndarray, rank_idx: np.ndarray) -> np.ndarray:
        """Vectorized feasibility of (n, L) index arrays, from :meth:`MemoryModel.total_bytes_batch`."""
        return self.memory_model.total_bytes_batch(bit_idx, rank_idx) <= self.budget_bytes

    def memory_bytes(self, cfg: QRConfig) -> int:
        return self.memory_model.total_bytes(cfg)

    def indices(self, cfg: QRConfig) -> tuple[np.ndarray, np.ndarray]:
        return self.space.bit_index(cfg), self.space.rank_index(cfg)

    def indices_batch(self, cfgs: Sequence[QRConfig]) -> tuple[np.ndarray, np.ndarray]:
        L = self.n_blocks
        if not cfgs:
            return np.zeros((0, L), dtype=np.int64), np.zeros((0, L), dtype=np.int64)
        return (np.stack([self.space.bit_index(c) for c in cfgs]), np.stack([self.space.rank_index(c) for c in cfgs]))

    def ensure_feasible(self, cfg: QRConfig) -> QRConfig:
        """Validate ``cfg`` against the space and repair it if it is over budget; the gate of every ask."""
        self.space.validate(cfg)
        if not self.is_feasible(cfg):
            cfg = self.repair(cfg)
        if not self.is_feasible(cfg):  # repair guarantees this; an internal error if not
            raise AssertionError(f"repair returned an over-budget configuration: {cfg}")
        return cfg


# ---------------------------------------------------------------------------------------------------------
# The optimizer protocol
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Observation:
    """One told result. ``value`` is the quality (higher is better; NaN = failed trial)."""

    step: int
    config: QRConfig
    value: float
    memory_bytes: int
    fidelity: Optional[float] = None
    source: Optional[str] = None


def result_value(result: "float | Mapping[str, Any]") -> float:
    """The quality in a told result: a number, or a mapping with ``"quality"`` (or ``"objective"``)."""
    if isinstance(result, Mapping):
        for key in ("quality", "objective"):
            if key in result:
                return result_value(result[key])
        raise QRBenchError(f"a result mapping needs a 'quality' (or 'objective') entry; got keys {sorted(result)}")
    if isinstance(result, bool) or not isinstance(result, (int, float, np.integer, np.floating)):
        raise QRBenchError(f"a result must be a number or a mapping with 'quality', got {result!r}")
    return float(result)


class Optimizer(ABC):
    """Ask/tell search over ``space`` under ``budget`` (bytes, a :class:`Budget` or a budget string).

    Subclasses implement :meth:`_ask` (and optionally :meth:`_tell`). :meth:`ask` repairs whatever
    :meth:`_ask` returns, so every asked configuration is feasible. Seeded: the same seed and the same told
    results give the same asks.
    """

    #: The registered name; set per class (a named variant sets it on the instance it builds).
    name: str = "optimizer"

    def __init__(
        self,
        space: SearchSpace,
        memory_model: MemoryModel,
        budget: "Budget | int | str",
        seed: int = 0,
        *,
        priors: "Priors | ImportancePriors | None" = None,
    ) -> None:
        self.ctx = SearchContext.build(space, memory_model, budget, priors)
        self.space, self.memory_model, self.budget = space, memory_model, self.ctx.budget
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.history: list[Observation] = []
        self.pending: list[QRConfig] = []
        self.n_asked = 0

    # -- protocol ----------------------------------------------------------------------------------------
    def ask(self) -> QRConfig:
        """The next configuration to evaluate; always within the budget."""
        cfg = self.ctx.ensure_feasible(self._ask())
        self.pending.append(cfg)
        self.n_asked += 1
        return cfg

    def tell(self, config: QRConfig, result: "float | Mapping[str, Any]") -> None:
        """Report the quality of ``config`` (higher is better): a number or a mapping with ``"quality"``."""
        self.space.validate(config)
        value = result_value(result)
        fidelity = source = None
        if isinstance(result, Mapping):
            fidelity = result.get("fidelity")
            source = result.get("source")
        if config in self.pending:
            self.pending.remove(config)
        obs = Observation(
            step=len(self.history),
            config=config,
            value=value,
            memory_bytes=self.ctx.memory_bytes(config),
            fidelity=None if fidelity is None else float(fidelity),
            source=None if source is None else str(source),
        )
        self.history.append(obs)
        self._tell(obs)

    @abstractmethod
    def _ask(self) -> QRConfig:
        """Propose a configuration of the space (repaired by :meth:`ask` if over budget)."""

    def _tell(self, obs: Observation) -> None:
        """Hook for subclasses; :attr:`history` already holds ``obs``."""

    # -- results -----------------------------------------------------------------------------------------
    def _best(self) -> Optional[Observation]:
        best = None
        for obs in self.history:
            if math.isnan(obs.value) or not self.ctx.is_feasible(obs.config):
                continue
            if best is None or obs.value > best.value:
                best = obs
        return best

    @property
    def incumbent(self) -> Optional[QRConfig]:
        """Best feasible told configuration (first one on ties); ``None`` before any tell."""
        best = self._best()
        return None if best is None else best.config

    @property
    def incumbent_value(self) -> Optional[float]:
        best = self._best()
        return None if best is None else best.value

    def observed_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rung indices and values of every told, non-failed observation: (n, L), (n, L), (n,)."""
        obs = [o for o in self.history if not math.isnan(o.value)]
        bi, ri = self.ctx.indices_batch([o.config for o in obs])
        return bi, ri, np.asarray([o.value for o in obs], dtype=float)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(budget={self.budget.name!r}, seed={self.seed}, told={len(self.history)})"
