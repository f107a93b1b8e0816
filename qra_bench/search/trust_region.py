"""Stage 2: trust-region Bayesian optimization driven by SMAC3's ask/tell (smac 2.x).

SMAC3 runs the loop: its ``ConfigurationSpace`` has one ordinal hyperparameter per block for bits
(``bits_00``...) and one for ranks (``rank_00``...); its intensifier and runhistory decide what is asked and
keep every result; its config selector trains the model and maximizes the acquisition function on every ask.
We plug three components into that machinery (the facade pattern SMAC3 is built for; they live in
:mod:`qra_bench.search.smac_bridge`):

- **model** :class:`PredictorModel`, an ``AbstractModel`` whose mean and variance come from our predictor
  (cost = -quality, variance = std^2). The predictor is fitted outside SMAC by the surrogate layer (or, with
  no surrogate, is a :class:`~qra_bench.search.predictors.GPPredictor` fitted to this optimizer's own results),
  so ``_train`` is a no-op.
- **acquisition** :class:`ClippedEI`, SMAC3's expected improvement, clipped at 0: SMAC3's ``EI`` raises a
  ``ValueError`` when round-off makes a far-off candidate's EI slightly negative.
- **acquisition maximizer** :class:`TrustRegionMaximizer`: EI is maximized over the *repaired, feasible*
  neighbours of the incumbent inside a trust region of ``radius`` atomic edits.

What SMAC3 2.x cannot express, and how we do it while SMAC3 still drives the loop:

- *A memory constraint.* SMAC3 has no constrained optimization; forbidden clauses would need one clause per
  infeasible combination. The maximizer only ever returns configurations repaired with
  :meth:`MemoryModel.repair` and checked with the budget, and :meth:`Optimizer.ask` checks again.
- *A trust region in atomic edits.* SMAC3's local search walks one-exchange neighbourhoods but has no region
  that grows and shrinks (no TuRBO). The region is the set ``{repair(x) : d(x, incumbent) <= radius}``, with
  ``d`` the L1 distance of rung indices (:meth:`SearchSpace.distance`): all radius-1 moves exactly, plus
  ``n_candidates`` random walks of up to ``radius`` edits. Repair may add downgrades beyond the radius; that
  is the point, since at a binding budget every upgrade needs one. The radius doubles after
  ``success_tolerance`` consecutive improvements of the incumbent and halves after ``failure_tolerance``
  consecutive failures, within ``[min_radius, max_radius]``.
- *Stopping on small EI.* SMAC3 stops on trials, time or a cost threshold. The maximizer records the largest
  EI it saw (:attr:`TrustRegionBO.last_max_ei`) and :attr:`TrustRegionBO.should_stop` turns True when it drops
  below ``ei_tol`` (1e-4, in quality units) or ``max_evals`` results have been told.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from qra_bench.memory import Budget, MemoryModel
from qra_bench.space import QRConfig, SearchSpace
from qra_bench.search.base import Observation, Optimizer, Priors
from qra_bench.search.predictors import CountingPredictor, GPPredictor, Predictor, refit_gp
from qra_bench.search.registry import register_optimizer
from qra_bench.search.operators import fill_budget, warm_start
from qra_bench.search.smac_bridge import (
    Codec,
    configuration_space,
    quiet_smac,
    smac_components,
    trial_value,
    user_trial,
)

if TYPE_CHECKING:  # SMAC3 is imported on first use only; importance.py pulls in torch
    from smac.facade.hyperparameter_optimization_facade import HyperparameterOptimizationFacade as HPO

    from qra_bench.importance import ImportancePriors

__all__ = ["TrustRegionBO"]


def _index_key(bi: np.ndarray, ri: np.ndarray) -> bytes:
    return np.concatenate([bi, ri]).astype(np.int8).tobytes()


@register_optimizer("bo")
class TrustRegionBO(Optimizer):
    """Trust-region BO over repaired neighbours, SMAC3 ask/tell underneath (see module docstring).

    Parameters
    ----------
    predictor
        Quality predictor for EI; default: a :class:`~qra_bench.search.predictors.GPPredictor` refitted to the
        told results.
    start
        Initial design: configurations, or ``(configuration, known quality)`` pairs whose value is already
        known (e.g. Stage 1's front) and is told to SMAC3 without being asked. Default: the warm start filled
        up to the budget, and the budget's reference configuration when it is in the space.
    radius, min_radius, max_radius
        Trust-region radius in atomic edits: initial value and bounds.
    success_tolerance, failure_tolerance
        Consecutive improvements (failures) before the radius doubles (halves).
    ei_tol
        :attr:`should_stop` once the largest EI in the region is below this (quality units).
    max_evals
        :attr:`should_stop` once this many results have been told (start values excluded).
    n_candidates
        Random walks sampled per ask when ``radius >= 2`` (all radius-1 moves are always included).
    max_repairs
        Most infeasible candidates repaired per ask (the rest are dropped), to bound the cost of an ask.
    correct
        With a ``predictor``: correct it by a GP on its residuals at the told results
        (:class:`~qra_bench.search.predictors.GPPredictor` with ``prior``), so a fixed or low-fidelity predictor
        learns from what was measured. Off when the told values are the predictor's own (a search against the
        surrogate only), where the residuals are zero.
    """

    name = "bo"

    def __init__(
        self,
        space: SearchSpace,
        memory_model: MemoryModel,
        budget: "Budget | int | str",
        seed: int = 0,
        *,
        priors: "Priors | ImportancePriors | None" = None,
        predictor: Optional[Predictor] = None,
        start: Sequence["QRConfig | tuple[QRConfig, float]"] = (),
        radius: int = 2,
        min_radius: int = 1,
        max_radius: int = 8,
        success_tolerance: int = 1,
        failure_tolerance: int = 2,
        ei_tol: float = 1e-4,
        xi: float = 0.0,
        max_evals: Optional[int] = None,
        n_candidates: int = 256,
        max_repairs: int = 64,
        improvement_tol: float = 0.0,
        correct: bool = True,
    ) -> None:
        super().__init__(space, memory_model, budget, seed, priors=priors)
        if not 1 <= min_radius <= radius <= max_radius:
            raise ValueError(f"need 1 <= min_radius <= radius <= max_radius, got {min_radius}, {radius}, {max_radius}")
        self.predictor = None if predictor is None else CountingPredictor(predictor, space.n_blocks)
        self.correct = bool(correct)
        self.radius, self.min_radius, self.max_radius = int(radius), int(min_radius), int(max_radius)
        self.success_tolerance, self.failure_tolerance = int(success_tolerance), int(failure_tolerance)
        self.ei_tol, self.xi, self.max_evals = float(ei_tol), float(xi), max_evals
        self.n_candidates, self.max_repairs, self.improvement_tol = int(n_candidates), int(max_repairs), improvement_tol
        self.last_max_ei: Optional[float] = None
        self._exhausted = False  # the last maximization found no new feasible configuration
        self.radius_history: list[int] = [self.radius]
        self._successes = self._failures = 0
        self._best_value = -math.inf
        self._known: dict[QRConfig, float] = {}  # configuration -> quality, for everything SMAC3 has been told
        self._seen_keys: set[bytes] = set()  # index keys of everything asked or known: not candidates again
        self._infos: dict[QRConfig, list[Any]] = {}
        self._cache: dict[bytes, tuple[float, float]] = {}
        self._fallback: Optional[GPPredictor] = None
        self._fallback_n = -1

        starts: list[tuple[QRConfig, Optional[float]]] = []
        for item in start:
            cfg, value = item if isinstance(item, tuple) else (item, None)
            starts.append((self.ctx.ensure_feasible(cfg), None if value is None else float(value)))
        if not starts:
            starts.append((fill_budget(warm_start(self.ctx), self.ctx), None))
            ref = self.budget.reference
            if ref is not None and ref.bits[0] in space.bits and ref.ranks[0] in space.ranks:
                starts.append((self.ctx.ensure_feasible(space.config(ref.bits, ref.ranks)), None))
        first: dict[QRConfig, Optional[float]] = {}  # the first mention of a configuration wins
        for cfg, value in starts:
            first.setdefault(cfg, value)
        self._start = list(first.items())
        for cfg, value in self._start:
            if value is not None:
                self._known[cfg] = value
                self._seen_keys.add(self._key(cfg))
                self.history.append(
                    Observation(
                        step=len(self.history),
                        config=cfg,
                        value=value,
                        memory_bytes=self.ctx.memory_bytes(cfg),
                        source="start",
                    )
                )
                self._best_value = max(self._best_value, value)
        self._initial_unknown = {c for c, v in self._start if v is None}
        self._smac: Optional[HPO] = None
        self._trial_seed: Optional[int] = None

    # -- SMAC3 -------------------------------------------------------------------------------------------
    def _build(self) -> HPO:
        """The SMAC3 facade with our model, acquisition and maximizer, and the start configurations."""
        from smac import Scenario
        from smac.facade.hyperparameter_optimization_facade import HyperparameterOptimizationFacade as HPO
        from smac.initial_design.default_design import DefaultInitialDesign
        from smac.intensifier.intensifier import Intensifier
        from smac.random_design.probability_design import ProbabilityRandomDesign
        from smac.runhistory.encoder.encoder import RunHistoryEncoder

        quiet_smac()
        comp = smac_components()
        best_start = max(self._start, key=lambda cv: -math.inf if cv[1] is None else cv[1])[0]
        cs = configuration_space(self.space, seed=self.seed, default=best_start)
        self._codec = Codec(self.space, cs)
        self._outdir = tempfile.mkdtemp(prefix="qra-smac-")
        weakref.finalize(self, shutil.rmtree, self._outdir, True)
        scenario = Scenario(cs, deterministic=True, n_trials=10**9, seed=self.seed, output_directory=Path(self._outdir))
        model = comp["PredictorModel"](cs, self, seed=self.seed)
        acq = comp["ClippedEI"](xi=self.xi)
        return HPO(
            scenario,
            None,  # ask/tell only: SMAC3 never calls a target function
            model=model,
            acquisition_function=acq,
            acquisition_maximizer=comp["TrustRegionMaximizer"](cs, self, seed=self.seed),
            initial_design=DefaultInitialDesign(
                scenario,
                n_configs=0,
                additional_configs=[self._codec.to_configuration(*self.ctx.indices(c)) for c, _ in self._start],
            ),
            random_design=ProbabilityRandomDesign(probability=0.0, seed=self.seed),
            intensifier=Intensifier(scenario, max_config_calls=1),
            runhistory_encoder=RunHistoryEncoder(scenario),
            config_selector=HPO.get_config_selector(scenario, retrain_after=1),
            logging_level=False,
            overwrite=True,
        )

    @property
    def smac(self) -> HPO:
        """The SMAC3 facade (built on first use)."""
        if self._smac is None:
            self._smac = self._build()
        return self._smac

    # -- prediction --------------------------------------------------------------------------------------
    def set_predictor(self, predictor: Predictor) -> None:
        """Replace the predictor (e.g. after the surrogate was refit on new real results)."""
        self.predictor = CountingPredictor(predictor, self.space.n_blocks)
        self._cache.clear()

    def _current_predictor(self) -> Predictor:
        if self.predictor is not None and not self.correct:
            return self.predictor
        if self._fallback is None or self._fallback_n != len(self.history):
            bi, ri, y = self.observed_arrays()
            self._fallback = refit_gp(self._fallback, self.space, self.predictor, self.seed, bi, ri, y)
            self._fallback_n = len(self.history)
            self._cache.clear()
        return self._fallback

    def predict(self, bit_idx: np.ndarray, rank_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Quality mean and std from the current predictor."""
        return self._current_predictor()(bit_idx, rank_idx)

    def _predict_vectors(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pred = self._current_predictor()
        X = np.atleast_2d(X)
        keys = [np.rint(x).astype(np.int8).tobytes() for x in X]
        missing = [i for i, k in enumerate(keys) if k not in self._cache]
        if missing:
            bi, ri = self._codec.vectors_to_indices(X[missing])
            mean, std = pred(bi, ri)
            for j, i in enumerate(missing):
                self._cache[keys[i]] = (float(mean[j]), float(std[j]))
        out = np.asarray([self._cache[k] for k in keys], dtype=float).reshape(-1, 2)
        return out[:, 0], out[:, 1]

    # -- the trust region --------------------------------------------------------------------------------
    @property
    def center(self) -> QRConfig:
        """Centre of the trust region: the best told configuration (start values included; for asked trials
        the same as SMAC3's intensifier incumbent), else the first start configuration."""
        return self.incumbent or self._start[0][0]

    def region_candidates(self) -> tuple[np.ndarray, np.ndarray]:
        """Repaired, feasible, not yet asked neighbours of :attr:`center` within :attr:`radius` edits (before
        repair), as rung-index arrays (m, L). Widens the radius (up to ``max_radius``, then random repaired
        configurations) only when the region holds nothing new."""
        radius = self.radius
        while True:
            bi, ri = self._region(self.center, radius)
            if len(bi) or radius >= self.max_radius:
                break
            radius = min(2 * radius, self.max_radius)
        if len(bi) == 0:  # the whole reachable region has been asked: random repaired configurations
            s_bi, s_ri = self.space.sample_indices(self.rng, 64)
            bi, ri = self._repair_and_filter(s_bi, s_ri)
        return bi, ri

    def _region(self, center: QRConfig, radius: int) -> tuple[np.ndarray, np.ndarray]:
        space, L = self.space, self.space.n_blocks
        nb, nr = len(space.bits), len(space.ranks)
        c_bi, c_ri = self.ctx.indices(center)
        # Every radius-1 move: (block, axis, +-1), ordered as SearchSpace.neighbours orders them.
        moves_b, moves_r = [], []
        for l in range(L):
            for axis, idx, k in ((0, c_bi, nb), (1, c_ri, nr)):
                for step in (-1, 1):
                    if 0 <= idx[l] + step < k:
                        b, r = c_bi.copy(), c_ri.copy()
                        (b if axis == 0 else r)[l] += step
                        moves_b.append(b)
                        moves_r.append(r)
        bi = np.asarray(moves_b, dtype=np.int64).reshape(-1, L)
        ri = np.asarray(moves_r, dtype=np.int64).reshape(-1, L)
        if radius >= 2:
            n = self.n_candidates
            wb, wr = np.tile(c_bi, (n, 1)), np.tile(c_ri, (n, 1))
            steps = self.rng.integers(2, radius + 1, size=n)
            rows = np.arange(n)
            for s in range(int(steps.max())):
                act = rows[steps > s]
                blk = self.rng.integers(L, size=len(act))
                on_bits = self.rng.random(len(act)) < (0.5 if nb > 1 and nr > 1 else float(nb > 1))
                sign = np.where(self.rng.random(len(act)) < 0.5, -1, 1)
                for arr, mask, k in ((wb, on_bits, nb), (wr, ~on_bits, nr)):
                    a, b_, sg = act[mask], blk[mask], sign[mask]
                    new = arr[a, b_] + sg
                    new = np.where((new < 0) | (new >= k), arr[a, b_] - sg, new)  # bounce off the ladder's end
                    arr[a, b_] = np.clip(new, 0, k - 1)
            bi, ri = np.concatenate([bi, wb]), np.concatenate([ri, wr])
        return self._repair_and_filter(bi, ri)

    def _key(self, cfg: QRConfig) -> bytes:
        return _index_key(*self.ctx.indices(cfg))

    def _repair_and_filter(self, bi: np.ndarray, ri: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Deduplicate, repair (a random subset of at most ``max_repairs``) the infeasible ones, and drop what
        SMAC3 has already been asked or told."""
        L = self.space.n_blocks
        if len(bi):
            both = np.unique(np.concatenate([bi, ri], axis=1), axis=0)  # sorted: deterministic order
            bi, ri = both[:, :L], both[:, L:]
        feasible = self.ctx.feasible_mask(bi, ri) if len(bi) else np.zeros(0, dtype=bool)
        out_b, out_r = list(bi[feasible]), list(ri[feasible])
        bad = np.flatnonzero(~feasible)
        if len(bad) > self.max_repairs:
            bad = np.sort(self.rng.choice(bad, size=self.max_repairs, replace=False))
        for i in bad:
            b, r = self.ctx.repair_indices(bi[i], ri[i])
            out_b.append(b)
            out_r.append(r)
        keep_b, keep_r, seen = [], [], set(self._seen_keys)
        for b, r in zip(out_b, out_r):
            key = _index_key(b, r)
            if key not in seen:
                seen.add(key)
                keep_b.append(b)
                keep_r.append(r)
        if not keep_b:
            return np.zeros((0, L), dtype=np.int64), np.zeros((0, L), dtype=np.int64)
        return np.asarray(keep_b, dtype=np.int64), np.asarray(keep_r, dtype=np.int64)

    # -- ask / tell --------------------------------------------------------------------------------------
    def _ask(self) -> QRConfig:
        smac = self.smac
        for _ in range(1000):
            info = smac.ask()
            self._trial_seed = info.seed
            cfg = self.ctx.ensure_feasible(self._codec.to_qrconfig(info.config))
            if cfg in self._known:
                # A start configuration with a known value, or one SMAC3 re-proposes: answer from memory.
                smac.tell(info, trial_value(self._known[cfg]), save=False)
                if self._exhausted and self.converged:
                    return cfg  # nothing new is feasible: the known centre, and should_stop is True
                continue
            self._infos.setdefault(cfg, []).append(info)
            self._seen_keys.add(self._key(cfg))
            return cfg
        raise RuntimeError("SMAC3 kept proposing configurations whose value is already known")

    def _tell(self, obs: Observation) -> None:
        cfg, value = obs.config, obs.value
        smac = self.smac
        infos = self._infos.get(cfg)
        # Told without being asked: SMAC3's runhistory takes it all the same (ask/tell allows user trials).
        info = infos.pop(0) if infos else user_trial(self._codec, *self.ctx.indices(cfg), self._trial_seed)
        smac.tell(info, trial_value(value), save=False)
        self._known[cfg] = value
        self._seen_keys.add(self._key(cfg))
        if math.isnan(value):
            return
        if cfg in self._initial_unknown:  # the initial design sets the baseline; it is no success or failure
            self._initial_unknown.discard(cfg)
        elif self._best_value > -math.inf:
            self._update_radius(value > self._best_value + self.improvement_tol)
        self._best_value = max(self._best_value, value)

    def _update_radius(self, improved: bool) -> None:
        if improved:
            self._successes, self._failures = self._successes + 1, 0
            if self._successes >= self.success_tolerance:
                self.radius, self._successes = min(2 * self.radius, self.max_radius), 0
        else:
            self._failures, self._successes = self._failures + 1, 0
            if self._failures >= self.failure_tolerance:
                self.radius, self._failures = max(self.radius // 2, self.min_radius), 0
        self.radius_history.append(self.radius)

    # -- stopping ----------------------------------------------------------------------------------------
    @property
    def n_evals(self) -> int:
        """Results told through :meth:`tell` (start values excluded)."""
        return sum(1 for o in self.history if o.source != "start")

    @property
    def converged(self) -> bool:
        """The largest EI in the region at the last ask was below ``ei_tol``."""
        return self.last_max_ei is not None and self.last_max_ei < self.ei_tol

    @property
    def should_stop(self) -> bool:
        return self.converged or (self.max_evals is not None and self.n_evals >= self.max_evals)
