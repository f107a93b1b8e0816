"""Stage 1 (``docs/algorithm.md``): multi-fidelity evolutionary search, as a fast batch function and an ask/tell optimizer.

One generation: parents by binary tournament on (front, crowding) from the population; offspring from the four
operators of :mod:`qra_bench.search.operators` in equal shares (each repaired); every offspring is *screened*
by the predictor (one batched call, score ``mean + beta * std``), optionally followed by low-fidelity real
trials on the predictor's shortlist; only the ``top_k`` are *promoted* to the higher fidelity (an
``evaluate`` callback, or the last screen's value when there is none); promoted ones join the archive, and
constrained NSGA-II on ``(-quality, memory)`` over the whole archive picks the next population. The search stops after ``generations`` or when the hypervolume of the
archive's front has not grown by ``hv_tol`` (relative) for ``patience`` generations.

- :func:`evolve` runs it synchronously against a predictor; the AutoQRA loop uses it.
- :class:`EvolutionOptimizer` is the same algorithm behind ask/tell: each generation's promoted offspring are
  asked one by one and the told values are the higher fidelity ("evolution only" baseline).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from qra_bench.memory import Budget, MemoryModel
from qra_bench.space import QRConfig, SearchSpace
from qra_bench.search import nsga2
from qra_bench.search.base import Optimizer, SearchContext
from qra_bench.search.predictors import CountingPredictor, GPPredictor, Predictor, refit_gp
from qra_bench.search.registry import register_optimizer
from qra_bench.search.operators import OPERATORS, apply_operator, fill_budget, jitter, warm_start

__all__ = ["ArchiveEntry", "EvolutionOptimizer", "EvolutionResult", "EvolutionSettings", "evolve", "prior_score"]

Evaluate = Callable[[list[QRConfig]], Sequence[float]]


@dataclass(frozen=True)
class EvolutionSettings:
    """Stage-1 settings (the method's defaults: population about 40, about 12 generations, top few promoted).

    Parameters
    ----------
    population
        Survivors per generation (and size of the warm-start population).
    generations
        Maximum number of generations after the initial one.
    offspring
        Offspring screened per generation.
    top_k
        Offspring promoted per generation (screen -> higher fidelity).
    beta
        Screening score ``mean + beta * std`` (0: exploit the predictor's mean).
    patience, hv_tol
        Stop when the hypervolume has grown by less than ``hv_tol`` (relative) for ``patience`` generations.
    operator_weights
        Share of offspring from each of :data:`~qra_bench.search.operators.OPERATORS`.
    shortlist
        With a ``low_fidelity`` screen: how many of the predictor's best go to it (0: ``2 * top_k``).
    """

    population: int = 40
    generations: int = 12
    offspring: int = 80
    top_k: int = 16
    beta: float = 0.0
    patience: int = 3
    hv_tol: float = 1e-3
    operator_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    shortlist: int = 0

    def __post_init__(self) -> None:
        for name in ("population", "offspring", "top_k", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"EvolutionSettings.{name} must be >= 1, got {getattr(self, name)}")
        if self.generations < 0:
            raise ValueError(f"EvolutionSettings.generations must be >= 0, got {self.generations}")
        if (
            len(self.operator_weights) != len(OPERATORS)
            or min(self.operator_weights) < 0
            or sum(self.operator_weights) <= 0
        ):
            raise ValueError(f"operator_weights needs {len(OPERATORS)} non-negative weights ({', '.join(OPERATORS)})")


@dataclass(frozen=True)
class ArchiveEntry:
    """One evaluated configuration. ``quality`` is the value selection used (evaluated, else predicted mean);
    ``mean``/``std`` are the predictor's screen (NaN if never screened); ``source`` says which fidelity."""

    config: QRConfig
    quality: float
    mean: float
    std: float
    memory_bytes: int
    generation: int
    source: str


@dataclass
class EvolutionResult:
    """What Stage 1 found: the archive (every promoted configuration), the final population, the first
    front of the archive (best quality first), the hypervolume after each generation (index 0 = initial)."""

    archive: list[ArchiveEntry]
    population: list[ArchiveEntry]
    pareto: list[ArchiveEntry]
    hypervolume: list[float]
    generations_run: int
    stopped_early: bool
    n_screened: int

    @property
    def best(self) -> ArchiveEntry:
        """Highest-quality archive entry (first one on ties)."""
        return max(self.archive, key=lambda e: e.quality)


def prior_score(ctx: SearchContext, bit_idx: np.ndarray, rank_idx: np.ndarray) -> np.ndarray:
    """Screen used before any model exists: rung positions weighted by the importance priors (bigger = more
    resources on the blocks that matter)."""
    nb, nr = max(len(ctx.space.bits) - 1, 1), max(len(ctx.space.ranks) - 1, 1)
    return (bit_idx / nb) @ ctx.importance_q + (rank_idx / nr) @ ctx.importance_r


def _farthest_first(ctx: SearchContext, cfgs: list[QRConfig], k: int) -> list[int]:
    """Indices of ``k`` of ``cfgs``: the first, then greedily the one farthest (L1 over rung indices) from
    those already picked; ties go to the earlier candidate."""
    bi, ri = ctx.indices_batch(cfgs)
    X = np.concatenate([bi, ri], axis=1).astype(float)
    picked = [0]
    dist = np.abs(X - X[0]).sum(axis=1)
    while len(picked) < min(k, len(cfgs)):
        i = int(np.argmax(dist))
        if dist[i] <= 0:
            break
        picked.append(i)
        dist = np.minimum(dist, np.abs(X - X[i]).sum(axis=1))
    return picked


# ---------------------------------------------------------------------------------------------------------
# The algorithm's pieces, shared by evolve() and EvolutionOptimizer
# ---------------------------------------------------------------------------------------------------------
class _Stage1:
    def __init__(self, ctx: SearchContext, settings: EvolutionSettings, rng: np.random.Generator) -> None:
        self.ctx, self.settings, self.rng = ctx, settings, rng
        self.seen: set[QRConfig] = set()  # every configuration ever screened or promoted
        self.hv_ref: Optional[np.ndarray] = None
        self.hv: list[float] = []
        self._best_hv = -math.inf
        self._stalled = 0

    # objectives (minimized): -quality, memory as a fraction of the budget; violation in the same unit
    def objectives(self, quality: np.ndarray, memory: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b = float(self.ctx.budget_bytes)
        F = np.stack([-np.asarray(quality, dtype=float), np.asarray(memory, dtype=float) / b], axis=1)
        return F, np.maximum(F[:, 1] - 1.0, 0.0)

    def initial_candidates(self, extra: Sequence[QRConfig] = ()) -> list[QRConfig]:
        # The paper's warm start, and the same filled up to the budget, then (ours) every uniform configuration
        # (each bit rung x each rank rung), repaired and filled: cheap seeds that already sit on the budget,
        # which the prior-only warm start often does not, and that span the bits-for-rank trade. Filling spends
        # slack by importance per byte, and a rank rung costs far fewer bytes than a bit rung, so seeds built
        # only from the warm start (or only at the top rank) all end up at high ranks; on the shipped table
        # the best configurations sit at ranks 4-8 with more bits. Then jittered copies of the filled warm start.
        space = self.ctx.space
        prior = warm_start(self.ctx)
        ws = fill_budget(prior, self.ctx)
        seeds = [ws, prior] + [fill_budget(space.uniform(b, r), self.ctx) for r in space.ranks for b in space.bits]
        out: list[QRConfig] = []
        seen: set[QRConfig] = set()
        for cfg in seeds + [self.ctx.ensure_feasible(c) for c in extra]:
            if cfg not in seen:
                out.append(cfg)
                seen.add(cfg)
        tries = 0
        while len(out) < self.settings.population and tries < 20 * self.settings.population:
            tries += 1
            cfg = jitter(ws, self.ctx, self.rng)
            if cfg not in seen:
                out.append(cfg)
                seen.add(cfg)
        return out

    def _tournament(self, rank: np.ndarray, crowd: np.ndarray) -> int:
        i, j = self.rng.integers(len(rank), size=2)
        if (rank[i], -crowd[i], i) <= (rank[j], -crowd[j], j):
            return int(i)
        return int(j)

    def offspring(self, parents: list[QRConfig], quality: np.ndarray, memory: np.ndarray, n: int) -> list[QRConfig]:
        """``n`` new (never seen) repaired offspring of ``parents``."""
        F, v = self.objectives(quality, memory)
        rank = nsga2.non_dominated_sort(F, v)
        crowd = np.zeros(len(parents))
        for r in np.unique(rank):
            m = np.flatnonzero(rank == r)
            crowd[m] = nsga2.crowding_distance(F[m])
        w = np.asarray(self.settings.operator_weights, dtype=float)
        counts = np.floor(w / w.sum() * n).astype(int)
        counts[np.argmax(w)] += n - counts.sum()
        kinds = [k for k, c in zip(OPERATORS, counts) for _ in range(c)]
        out: list[QRConfig] = []
        batch: set[QRConfig] = set()
        for kind in kinds:
            for _ in range(6):  # a few tries to find something new; duplicates are skipped, not re-screened
                pair = [parents[self._tournament(rank, crowd)], parents[self._tournament(rank, crowd)]]
                child = apply_operator(kind, pair, self.ctx, self.rng)
                if child not in self.seen and child not in batch:
                    out.append(child)
                    batch.add(child)
                    break
        return out

    def promote(
        self, cfgs: list[QRConfig], mean: np.ndarray, std: np.ndarray, k: int, first: Optional[QRConfig] = None
    ) -> np.ndarray:
        """Indices of the ``k`` best by ``mean + beta * std`` (stable); ``first`` (the warm start) always goes."""
        score = np.asarray(mean, dtype=float) + self.settings.beta * np.asarray(std, dtype=float)
        score = np.where(np.isnan(score), -np.inf, score)
        order = [int(i) for i in np.argsort(-score, kind="stable")]
        if first is not None and first in cfgs:
            fi = cfgs.index(first)
            order.remove(fi)
            order.insert(0, fi)
        return np.asarray(order[:k], dtype=np.int64)

    def survivors(self, quality: np.ndarray, memory: np.ndarray) -> np.ndarray:
        F, v = self.objectives(quality, memory)
        return nsga2.select(F, self.settings.population, v)

    def front(self, quality: np.ndarray, memory: np.ndarray) -> np.ndarray:
        F, v = self.objectives(quality, memory)
        return np.flatnonzero(nsga2.pareto_mask(F, v))

    def record_hypervolume(self, quality: np.ndarray, memory: np.ndarray) -> bool:
        """Append the archive's hypervolume; True when it has stalled for ``patience`` generations."""
        F, v = self.objectives(quality, memory)
        F = F[v == 0]
        if self.hv_ref is None:
            # Fixed at the first call: worst initial quality and the budget itself (nudged so that points on
            # them still count), so later generations are measured against the same box.
            qmin = float(np.min(-F[:, 0])) if len(F) else 0.0
            self.hv_ref = np.array([-qmin + 1e-6 * max(1.0, abs(qmin)), 1.0 + 1e-6])
        hv = nsga2.hypervolume_2d(F, self.hv_ref)
        self.hv.append(hv)
        if hv > self._best_hv + self.settings.hv_tol * max(abs(self._best_hv), 1e-12) or self._best_hv == -math.inf:
            self._best_hv = hv
            self._stalled = 0
        else:
            self._stalled += 1
        return self._stalled >= self.settings.patience


def evolve(
    predictor: Predictor,
    space: SearchSpace,
    memory_model: MemoryModel,
    budget: "Budget | int | str",
    priors=None,
    seed: int = 0,
    settings: Optional[EvolutionSettings] = None,
    initial: Sequence[QRConfig] = (),
    evaluate: Optional[Evaluate] = None,
    low_fidelity: Optional[Evaluate] = None,
) -> EvolutionResult:
    """Run Stage 1: ``predictor`` screens every offspring; ``low_fidelity(configs) -> qualities`` (optional,
    e.g. real trials on a few percent of the data) re-ranks the predictor's ``shortlist``; the ``top_k`` are
    promoted and valued by ``evaluate(configs) -> qualities`` if given, else by the last screen.

    ``initial`` adds configurations (repaired) to the warm-start population. Deterministic for a seed (and
    deterministic callbacks).
    """
    settings = settings or EvolutionSettings()
    ctx = SearchContext.build(space, memory_model, budget, priors)
    pred = predictor if isinstance(predictor, CountingPredictor) else CountingPredictor(predictor, space.n_blocks)
    rows_before = pred.rows
    st = _Stage1(ctx, settings, np.random.default_rng(seed))
    archive: list[ArchiveEntry] = []

    def call(fn: Evaluate, chosen: list[QRConfig], what: str) -> np.ndarray:
        values = np.asarray([float(v) for v in fn(list(chosen))], dtype=float)
        if values.shape != (len(chosen),):
            raise ValueError(f"{what} returned {values.shape[0]} values for {len(chosen)} configurations")
        return values

    def promote_and_add(cfgs: list[QRConfig], gen: int, k: int, first: Optional[QRConfig] = None) -> None:
        if not cfgs:
            return
        bi, ri = ctx.indices_batch(cfgs)
        mean, std = pred(bi, ri)
        st.seen.update(cfgs)
        if low_fidelity is None:
            idx = st.promote(cfgs, mean, std, k, first)
        else:  # second screen: the predictor's shortlist, re-ranked by low-fidelity real trials
            short = st.promote(cfgs, mean, std, max(k, settings.shortlist or 2 * k), first)
            lf = call(low_fidelity, [cfgs[i] for i in short], "low_fidelity")
            idx = short[st.promote([cfgs[i] for i in short], lf, np.zeros(len(short)), k, first)]
        chosen = [cfgs[i] for i in idx]
        if evaluate is not None:
            values, source = call(evaluate, chosen, "evaluate"), "evaluate"
        elif low_fidelity is not None:
            values, source = lf[[list(short).index(i) for i in idx]], "low_fidelity"
        else:
            values, source = mean[idx], "predictor"
        mem = ctx.memory_model.total_bytes_batch(bi[idx], ri[idx])
        for j, i in enumerate(idx):
            archive.append(
                ArchiveEntry(
                    config=cfgs[i],
                    quality=float(values[j]),
                    mean=float(mean[i]),
                    std=float(std[i]),
                    memory_bytes=int(mem[j]),
                    generation=gen,
                    source=source,
                )
            )

    def arrays() -> tuple[np.ndarray, np.ndarray]:
        return (
            np.asarray([e.quality for e in archive], dtype=float),
            np.asarray([e.memory_bytes for e in archive], dtype=np.int64),
        )

    cands = st.initial_candidates(initial)
    # With nothing but the predictor the whole initial population is "evaluated" by the screen.
    cheap = evaluate is None and low_fidelity is None
    promote_and_add(cands, 0, len(cands) if cheap else settings.top_k, first=cands[0])
    q, m = arrays()
    population = [archive[i] for i in st.survivors(q, m)]
    st.record_hypervolume(q, m)

    stopped_early, gens = False, 0
    for gen in range(1, settings.generations + 1):
        parents = [e.config for e in population]
        pq = np.asarray([e.quality for e in population])
        pm = np.asarray([e.memory_bytes for e in population])
        kids = st.offspring(parents, pq, pm, settings.offspring)
        promote_and_add(kids, gen, settings.top_k)
        gens = gen
        q, m = arrays()
        population = [archive[i] for i in st.survivors(q, m)]
        if st.record_hypervolume(q, m):
            stopped_early = gen < settings.generations
            break
        if not kids:  # the neighbourhood is exhausted
            stopped_early = True
            break

    q, m = arrays()
    front = sorted((archive[i] for i in st.front(q, m)), key=lambda e: (-e.quality, e.memory_bytes))
    return EvolutionResult(
        archive=archive,
        population=population,
        pareto=front,
        hypervolume=st.hv,
        generations_run=gens,
        stopped_early=stopped_early,
        n_screened=pred.rows - rows_before,
    )


# ---------------------------------------------------------------------------------------------------------
# Ask/tell
# ---------------------------------------------------------------------------------------------------------
@register_optimizer("evolution")
class EvolutionOptimizer(Optimizer):
    """Stage 1 behind ask/tell ("evolution only").

    Each generation's offspring are screened by ``predictor`` if given, else by a
    :class:`~qra_bench.search.predictors.GPPredictor` fitted to the told results (after ``min_fit`` of them),
    else by :func:`prior_score`; the ``top_k`` (default 6) are asked one by one. Selection runs on the told
    values. :attr:`converged` turns True when the hypervolume stalls; asking further keeps evolving.
    """

    name = "evolution"

    def __init__(
        self,
        space: SearchSpace,
        memory_model: MemoryModel,
        budget: "Budget | int | str",
        seed: int = 0,
        *,
        priors=None,
        predictor: Optional[Predictor] = None,
        settings: Optional[EvolutionSettings] = None,
        min_fit: int = 5,
    ) -> None:
        super().__init__(space, memory_model, budget, seed, priors=priors)
        self.settings = settings or EvolutionSettings(top_k=6)
        self.predictor = None if predictor is None else CountingPredictor(predictor, space.n_blocks)
        self.min_fit = min_fit
        self._stage = _Stage1(self.ctx, self.settings, self.rng)
        self._queue: list[QRConfig] = []
        self._asked: set[QRConfig] = set()
        self._last_candidates: list[QRConfig] = []
        self._gp: Optional[GPPredictor] = None
        self._gp_rows = -1  # told results the current GP was fitted on
        self.generation = -1
        self.converged = False

    def set_predictor(self, predictor: Predictor) -> None:
        """Replace the screening predictor (e.g. after the surrogate was refit)."""
        self.predictor = CountingPredictor(predictor, self.space.n_blocks)
        self._gp, self._gp_rows = None, -1

    def _screen(self, cfgs: list[QRConfig]) -> tuple[np.ndarray, np.ndarray]:
        bi, ri = self.ctx.indices_batch(cfgs)
        obi, ori, y = self.observed_arrays()
        if self.predictor is None and len(y) < self.min_fit:
            return prior_score(self.ctx, bi, ri), np.zeros(len(cfgs))
        # With a predictor the GP models its residuals at the told results (once there are enough). The fit is
        # reused until new results arrive (see refit_gp for when the kernel is re-estimated).
        if self._gp is None or self._gp_rows != len(y):
            self._gp = refit_gp(self._gp, self.space, self.predictor, self.seed, obi, ori, y)
            self._gp_rows = len(y)
        return self._gp(bi, ri)

    def _told_arrays(self) -> tuple[list[QRConfig], np.ndarray, np.ndarray]:
        obs = [o for o in self.history if not math.isnan(o.value)]
        return (
            [o.config for o in obs],
            np.asarray([o.value for o in obs], dtype=float),
            np.asarray([o.memory_bytes for o in obs], dtype=np.int64),
        )

    def _next_generation(self) -> None:
        self.generation += 1
        first = None
        cfgs, q, m = self._told_arrays()
        if self.generation == 0:
            cands = self._stage.initial_candidates()
            first = cands[0]
        else:
            if cfgs:
                if self._stage.record_hypervolume(q, m):
                    self.converged = True
                keep = self._stage.survivors(q, m)
                parents, pq, pm = [cfgs[i] for i in keep], q[keep], m[keep]
            else:  # everything asked so far is still pending: breed from what was screened
                parents = self._last_candidates
                bi, ri = self.ctx.indices_batch(parents)
                pq, _ = self._screen(parents)
                pm = self.memory_model.total_bytes_batch(bi, ri)
            cands = self._stage.offspring(parents, pq, pm, self.settings.offspring)
        cands = [c for c in cands if c not in self._asked]
        if not cands:  # neighbourhood exhausted: fall back to jittered copies of the incumbent
            base = self.incumbent or warm_start(self.ctx)
            cands = [jitter(base, self.ctx, self.rng, n_edits=3) for _ in range(self.settings.top_k)]
        self._stage.seen.update(cands)
        self._last_candidates = cands
        if self.predictor is None and self.generation == 0:
            # Nothing to screen with yet: the first asks are a space-filling design around the warm start, so
            # the first model sees both ends of the bits-for-rank trade (see initial_candidates).
            self._queue = [cands[i] for i in _farthest_first(self.ctx, cands, self.settings.top_k)]
            return
        mean, std = self._screen(cands)
        self._queue = [cands[i] for i in self._stage.promote(cands, mean, std, self.settings.top_k, first)]

    def _ask(self) -> QRConfig:
        while not self._queue:
            self._next_generation()
        cfg = self._queue.pop(0)
        self._asked.add(cfg)
        return cfg
