"""The AutoQRA loop: importance priors -> Stage 1 evolution (surrogate screen) -> Stage 2 trust-region BO
(SMAC3 ask/tell) -> real trials for the most promising configurations -> refit -> ...

:func:`autoqra_search` is the function the collector layer drives. Without ``real_eval`` both stages run
against the predictor only and it returns the top candidates; with ``real_eval(configs) -> qualities`` (real
trials, appended to the results table by the caller) Stage 2 spends ``real_evals`` of them: first the best few
Stage-1 configurations in one batch, then one EI-chosen configuration at a time, calling ``refit()`` for a new
predictor after each batch, until the budget of real evaluations is spent or the largest EI in the trust
region falls below ``ei_tol``.

:class:`AutoQRAOptimizer` is the same two-stage method behind ask/tell, for the benchmark runner, with the
bits-only and rank-only variants (``axes=``) registered as ``autoqra-bits-only`` and ``autoqra-ranks-only``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence, TypeVar

import numpy as np

from qra_bench.errors import QRBenchError
from qra_bench.memory import Budget, MemoryBreakdown, MemoryModel
from qra_bench.space import QRConfig, SearchSpace
from qra_bench.search.axes import Restriction, restrict_axes
from qra_bench.search.base import Observation, Optimizer, Priors, SearchContext
from qra_bench.search.predictors import CountingPredictor, Predictor
from qra_bench.search.registry import named_variant, register_optimizer
from qra_bench.search.evolution import EvolutionOptimizer, EvolutionSettings, evolve
from qra_bench.search.trust_region import TrustRegionBO

__all__ = [
    "AutoQRAOptimizer",
    "AutoQRASettings",
    "Candidate",
    "SearchRecord",
    "SearchResult",
    "autoqra_search",
]

if TYPE_CHECKING:  # importance.py pulls in torch
    from qra_bench.importance import ImportancePriors

RealEval = Callable[[list[QRConfig]], Sequence[float]]
_T = TypeVar("_T")


# ---------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """A configuration AutoQRA proposes: the final predictor's mean and std, the real result if measured."""

    config: QRConfig
    predicted_mean: float
    predicted_std: float
    measured: Optional[float]
    memory_bytes: int
    stage: str


@dataclass(frozen=True)
class SearchRecord:
    """One step of the search, in order. ``stage``: ``"stage1"`` (a promoted offspring; ``generation`` set),
    ``"stage2"`` (a Stage-2 ask evaluated by the predictor) or ``"real"`` (a Stage-2 ask sent to ``real_eval``).
    ``predicted_*`` are the predictor's at that moment; ``radius``/``max_ei`` the trust region's at the ask."""

    step: int
    stage: str
    config: QRConfig
    predicted_mean: float
    predicted_std: float
    measured: Optional[float]
    memory_bytes: int
    generation: Optional[int] = None
    radius: Optional[int] = None
    max_ei: Optional[float] = None


@dataclass
class SearchResult:
    """What :func:`autoqra_search` returns.

    ``incumbent`` is the best measured configuration if any was measured, else the best predicted one;
    ``memory`` its itemized bytes. ``candidates`` are sorted best first (measured ones by their result,
    then the rest by predicted mean). ``n_predictor_rows`` counts configurations predicted (all predictors
    together). ``stopped_by`` is ``"max_ei"``, ``"evals"`` or ``"exhausted"``.
    """

    incumbent: QRConfig
    predicted_mean: float
    predicted_std: float
    measured: Optional[float]
    memory: MemoryBreakdown
    budget: Budget
    candidates: list[Candidate]
    history: list[SearchRecord]
    hypervolume: list[float]
    n_predictor_rows: int
    n_predictor_calls: int
    n_real_evals: int
    stopped_by: str


@dataclass(frozen=True)
class AutoQRASettings:
    """Knobs of :func:`autoqra_search`.

    Parameters
    ----------
    evolution
        Stage-1 settings.
    stage2_evals
        Stage-2 asks evaluated by the predictor when there is no ``real_eval``.
    n_start
        Stage-1 configurations (best predicted first, front first) that seed Stage 2's SMAC3 runhistory.
    initial_real
        Stage-1 configurations measured in the first ``real_eval`` batch (default ``min(3, max(1, K // 3))``).
    radius, max_radius, ei_tol, n_bo_candidates
        Trust region of Stage 2 (see :class:`~qra_bench.search.trust_region.TrustRegionBO`).
    n_candidates
        Candidates returned (at least every measured one).
    """

    evolution: EvolutionSettings = field(default_factory=EvolutionSettings)
    stage2_evals: int = 30
    n_start: int = 8
    initial_real: Optional[int] = None
    radius: int = 2
    max_radius: int = 8
    ei_tol: float = 1e-4
    n_bo_candidates: int = 256
    n_candidates: int = 10


# ---------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------
def autoqra_search(
    space: SearchSpace,
    memory_model: MemoryModel,
    budget: "Budget | int | str",
    predictor: Predictor,
    priors: "Priors | ImportancePriors | None" = None,
    seed: int = 0,
    real_eval: Optional[RealEval] = None,
    real_evals: int = 6,
    refit: Optional[Callable[[], Predictor]] = None,
    *,
    settings: Optional[AutoQRASettings] = None,
    axes: str = "both",
    low_fidelity_eval: Optional[RealEval] = None,
) -> SearchResult:
    """Two-stage AutoQRA search under ``budget``; deterministic for a seed (given deterministic callbacks).

    Parameters
    ----------
    predictor
        ``predictor(bit_idx, rank_idx) -> (mean, std)`` of quality (higher is better), indices of ``space``.
    priors
        Importance priors (``importance_q``, ``importance_r`` in [0, 1]); ``None`` = flat.
    real_eval
        ``real_eval(configs) -> qualities``: runs real trials (the caller records them). ``None``: predictor only.
    real_evals
        Real evaluations to spend (``K``).
    refit
        Called after every ``real_eval`` batch; returns the predictor refitted on the grown table.
    axes
        ``"both"``, or ``"bits"`` / ``"ranks"`` for the bits-only / rank-only ablations.
    low_fidelity_eval
        Optional Stage-1 second screen, ``low_fidelity_eval(configs) -> qualities`` (e.g. real trials on a few
        percent of the data), applied to the predictor's shortlist of each generation.
    """
    settings = settings or AutoQRASettings()
    restriction = restrict_axes(space, memory_model, budget, axes)
    if restriction is not None:
        space, memory_model = restriction.space, restriction.memory_model
        predictor = restriction.predictor(predictor)
    ctx = SearchContext.build(space, memory_model, budget, priors)
    counters: list[CountingPredictor] = []

    def counted(p: Predictor) -> CountingPredictor:
        c = CountingPredictor(p, space.n_blocks)
        counters.append(c)
        return c

    pred = counted(predictor)
    history: list[SearchRecord] = []

    # Stage 1
    evo = evolve(
        pred, space, memory_model, ctx.budget, ctx.priors, seed, settings.evolution, low_fidelity=low_fidelity_eval
    )
    for e in evo.archive:
        history.append(
            SearchRecord(
                step=len(history),
                stage="stage1",
                config=e.config,
                predicted_mean=e.mean,
                predicted_std=e.std,
                measured=None,
                memory_bytes=e.memory_bytes,
                generation=e.generation,
            )
        )
    ranked = _dedupe([e for e in evo.pareto] + sorted(evo.archive, key=lambda e: -e.quality))

    # Stage 2
    measured: dict[QRConfig, float] = {}
    bo_kw: dict[str, Any] = dict(
        priors=ctx.priors,
        radius=settings.radius,
        max_radius=max(settings.radius, settings.max_radius),
        ei_tol=settings.ei_tol,
        n_candidates=settings.n_bo_candidates,
    )
    stopped_by = "evals"
    if real_eval is None:
        start = [(e.config, e.quality) for e in ranked[: settings.n_start]]
        bo = TrustRegionBO(
            space,
            memory_model,
            ctx.budget,
            seed,
            predictor=pred,
            start=start,
            max_evals=settings.stage2_evals,
            correct=False,
            **bo_kw,
        )
        while not bo.should_stop:
            cfg = bo.ask()
            if bo.converged:
                stopped_by = "max_ei"
                break
            m, s = pred(*_idx(ctx, cfg))
            bo.tell(cfg, float(m[0]))
            history.append(_record(history, "stage2", ctx, cfg, m[0], s[0], None, bo))
    else:
        if real_evals < 1:
            raise QRBenchError(f"real_evals must be >= 1 when real_eval is given, got {real_evals}")
        n_init = settings.initial_real or min(3, max(1, real_evals // 3))
        n_init = min(n_init, real_evals)
        start = [e.config for e in ranked[:n_init]]
        bo = TrustRegionBO(
            space, memory_model, ctx.budget, seed, predictor=pred, start=start, max_evals=real_evals, **bo_kw
        )
        batch = [bo.ask() for _ in range(len(start))]
        while batch:
            m, s = pred(*ctx.indices_batch(batch))
            values = [float(v) for v in real_eval(list(batch))]
            if len(values) != len(batch):
                raise QRBenchError(f"real_eval returned {len(values)} results for {len(batch)} configurations")
            for i, (cfg, v) in enumerate(zip(batch, values)):
                measured[cfg] = v
                bo.tell(cfg, v)
                history.append(_record(history, "real", ctx, cfg, m[i], s[i], v, bo))
            if refit is not None:
                pred = counted(_restricted(refit(), restriction))
                bo.set_predictor(pred)
            if bo.should_stop:
                break
            cfg = bo.ask()
            if bo.converged:
                stopped_by = "max_ei"
                break
            batch = [cfg]

    # Candidates, scored by the final predictor
    pool = _dedupe([r.config for r in history])
    if not pool:
        stopped_by = "exhausted"
        pool = [evo.best.config]
    m, s = pred(*ctx.indices_batch(pool))
    mem = memory_model.total_bytes_batch(*ctx.indices_batch(pool))
    cands = [
        Candidate(
            config=c,
            predicted_mean=float(m[i]),
            predicted_std=float(s[i]),
            measured=measured.get(c),
            memory_bytes=int(mem[i]),
            stage=_first_stage(history, c),
        )
        for i, c in enumerate(pool)
    ]
    cands.sort(key=lambda c: (c.measured is None, -(c.measured if c.measured is not None else c.predicted_mean)))
    cands = cands[: max(settings.n_candidates, len(measured))]
    best = cands[0]
    return SearchResult(
        incumbent=best.config,
        predicted_mean=best.predicted_mean,
        predicted_std=best.predicted_std,
        measured=best.measured,
        memory=memory_model.breakdown(best.config),
        budget=ctx.budget,
        candidates=cands,
        history=history,
        hypervolume=list(evo.hypervolume),
        n_predictor_rows=sum(c.rows for c in counters),
        n_predictor_calls=sum(c.calls for c in counters),
        n_real_evals=len(measured),
        stopped_by=stopped_by,
    )


def _restricted(p: Predictor, restriction: Optional[Restriction]) -> Predictor:
    return p if restriction is None else restriction.predictor(p)


def _idx(ctx: SearchContext, cfg: QRConfig) -> tuple[np.ndarray, np.ndarray]:
    bi, ri = ctx.indices(cfg)
    return bi[None, :], ri[None, :]


def _dedupe(items: Iterable[_T]) -> list[_T]:
    """``items`` without repeated configurations (an item's ``config``, or the item itself), first kept."""
    seen: set[Any] = set()
    out: list[_T] = []
    for it in items:
        key = getattr(it, "config", it)
        if key not in seen:
            seen.add(key)
            out.append(it)
    return out


def _first_stage(history: list[SearchRecord], cfg: QRConfig) -> str:
    return next(r.stage for r in history if r.config == cfg)


def _record(
    history: list[SearchRecord],
    stage: str,
    ctx: SearchContext,
    cfg: QRConfig,
    mean: float,
    std: float,
    measured: Optional[float],
    bo: TrustRegionBO,
) -> SearchRecord:
    return SearchRecord(
        step=len(history),
        stage=stage,
        config=cfg,
        predicted_mean=float(mean),
        predicted_std=float(std),
        measured=measured,
        memory_bytes=ctx.memory_bytes(cfg),
        radius=bo.radius,
        max_ei=bo.last_max_ei,
    )


# ---------------------------------------------------------------------------------------------------------
# Ask/tell
# ---------------------------------------------------------------------------------------------------------
@register_optimizer("autoqra")
class AutoQRAOptimizer(Optimizer):
    """Two-stage AutoQRA behind ask/tell: Stage 1 (:class:`EvolutionOptimizer`) for ``stage1_evals`` asks (or
    until its hypervolume stalls), then Stage 2 (:class:`TrustRegionBO`) seeded with every Stage-1 result.

    ``predictor`` screens and drives EI when given; otherwise both stages fit a
    :class:`~qra_bench.search.predictors.GPPredictor` to the told results. ``axes="bits"``/``"ranks"`` searches
    one axis with the other fixed (see :func:`restrict_axes`).
    """

    name = "autoqra"

    def __init__(
        self,
        space: SearchSpace,
        memory_model: MemoryModel,
        budget: "Budget | int | str",
        seed: int = 0,
        *,
        priors: "Priors | ImportancePriors | None" = None,
        predictor: Optional[Predictor] = None,
        stage1_evals: int = 12,
        evolution_settings: Optional[EvolutionSettings] = None,
        bo_kwargs: Optional[dict] = None,
        axes: str = "both",
    ) -> None:
        super().__init__(space, memory_model, budget, seed, priors=priors)
        self.axes = axes
        self._restriction = restrict_axes(space, memory_model, self.budget, axes)
        self._sub_space = space if self._restriction is None else self._restriction.space
        self._sub_mm = memory_model if self._restriction is None else self._restriction.memory_model
        self._predictor = None if predictor is None else _restricted(predictor, self._restriction)
        self.stage1_evals = stage1_evals
        self._bo_kwargs = dict(bo_kwargs or {})
        self.stage1 = EvolutionOptimizer(
            self._sub_space,
            self._sub_mm,
            self.budget,
            seed,
            priors=self.ctx.priors,
            predictor=self._predictor,
            settings=evolution_settings or EvolutionSettings(top_k=6),
        )
        self.stage2: Optional[TrustRegionBO] = None

    @property
    def stage(self) -> int:
        return 1 if self.stage2 is None else 2

    def set_predictor(self, predictor: Predictor) -> None:
        self._predictor = _restricted(predictor, self._restriction)
        (self.stage2 or self.stage1).set_predictor(self._predictor)

    def _in_subspace(self, cfg: QRConfig) -> bool:
        return all(b in self._sub_space.bits for b in cfg.bits) and all(r in self._sub_space.ranks for r in cfg.ranks)

    def _ask(self) -> QRConfig:
        if self.stage2 is None and (self.stage1.n_asked >= self.stage1_evals or self.stage1.converged):
            start = [
                (o.config, o.value) for o in self.history if not math.isnan(o.value) and self._in_subspace(o.config)
            ]
            self.stage2 = TrustRegionBO(
                self._sub_space,
                self._sub_mm,
                self.budget,
                self.seed,
                priors=self.ctx.priors,
                predictor=self._predictor,
                start=start or (),
                **self._bo_kwargs,
            )
        return (self.stage2 or self.stage1).ask()

    def _tell(self, obs: Observation) -> None:
        if not self._in_subspace(obs.config):
            return  # told about a configuration outside the searched axes: kept in history only
        (self.stage2 or self.stage1).tell(obs.config, obs.value)


register_optimizer("autoqra-bits-only")(
    named_variant(AutoQRAOptimizer, "autoqra-bits-only", "AutoQRA searching bits only (ranks fixed).", axes="bits")
)
register_optimizer("autoqra-ranks-only")(
    named_variant(AutoQRAOptimizer, "autoqra-ranks-only", "AutoQRA searching ranks only (bits fixed).", axes="ranks")
)
