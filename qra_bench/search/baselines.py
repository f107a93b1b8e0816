"""Baselines, all under the same budget and the same :meth:`MemoryModel.repair` as AutoQRA.

- Uniform configurations: ``qlora-4bit`` (4 bits, rank 16, QLoRA-style), ``uniform-3bit``, ``uniform-8bit``,
  ``lora-fp16`` (16 bits: the unquantized upper bound, repaired like everything else when it does not fit).
- ``random``: uniform random rungs, repaired.
- ``smac-hpo``: SMAC3's HyperparameterOptimizationFacade alone (random forest, EI, local and random search)
  over the same ordinal ConfigSpace; each proposal is repaired before it is asked, and SMAC3 is told the
  result of the repaired configuration for its proposal.
- ``evolution`` (Stage 1 only) and ``bo`` (Stage 2 only) live in :mod:`.evolution` and :mod:`.trust_region`;
  ``autoqra-bits-only`` and ``autoqra-ranks-only`` in :mod:`.autoqra`.
- ``lq-lora-milp``: LQ-LoRA-style mixed precision by an integer program (:func:`milp_config`).
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from qra_bench.errors import QRBenchError
from qra_bench.memory import Budget, MemoryModel
from qra_bench.space import QRConfig, SearchSpace
from qra_bench.search.base import Observation, Optimizer, SearchContext
from qra_bench.search.registry import named_variant, register_optimizer

if TYPE_CHECKING:
    from smac import HyperparameterOptimizationFacade

__all__ = [
    "MilpBaseline",
    "RandomSearch",
    "SMACHPO",
    "UniformBaseline",
    "UNIFORM_BASELINES",
    "milp_config",
    "quantization_error",
]

#: name -> bit width of the uniform baselines (all at rank 16, or the ladder's largest rank without 16).
UNIFORM_BASELINES: dict[str, int] = {"qlora-4bit": 4, "uniform-3bit": 3, "uniform-8bit": 8, "lora-fp16": 16}


def _default_rank(space: SearchSpace) -> int:
    return 16 if 16 in space.ranks else space.ranks[-1]


class UniformBaseline(Optimizer):
    """Every ask returns ``bits`` and ``rank`` on every block, repaired if that does not fit.

    :attr:`repaired` says whether the budget forced a change (e.g. ``lora-fp16`` under a 4-bit budget).
    """

    name = "uniform"

    def __init__(
        self,
        space: SearchSpace,
        memory_model: MemoryModel,
        budget: "Budget | int | str",
        seed: int = 0,
        *,
        bits: int = 4,
        rank: Optional[int] = None,
        priors=None,
    ) -> None:
        super().__init__(space, memory_model, budget, seed, priors=priors)
        rank = _default_rank(space) if rank is None else rank
        self.target = space.config((bits,) * space.n_blocks, (rank,) * space.n_blocks)
        self.config = self.ctx.ensure_feasible(self.target)
        self.repaired = self.config != self.target

    def _ask(self) -> QRConfig:
        return self.config


for _name, _bits in UNIFORM_BASELINES.items():
    register_optimizer(_name)(
        named_variant(
            UniformBaseline,
            _name,
            f"{_name}: uniform {_bits}-bit configuration at rank 16 (repaired to the budget).",
            bits=_bits,
        )
    )


@register_optimizer("random")
class RandomSearch(Optimizer):
    """Uniformly random rungs for every block, repaired to the budget."""

    name = "random"

    def _ask(self) -> QRConfig:
        return self.space.sample(self.rng)


# ---------------------------------------------------------------------------------------------------------
# SMAC3 HPO facade alone
# ---------------------------------------------------------------------------------------------------------
def _order_local_search_starts(maximizer: Any) -> None:
    """Make SMAC3's local search start from its points in a fixed order.

    smac 2.4's ``LocalSearch._get_init_points_from_previous_configs`` deduplicates its start points with
    ``list(set(...))``, and ``Configuration.__hash__`` hashes the repr string, so the order (and through the
    tie-breaking draws, the proposals) changes with ``PYTHONHASHSEED`` from one process to the next. Sorting
    the start points by their vector keeps the same points and makes a seed reproduce across processes.
    """
    local = getattr(maximizer, "_local_search", None)
    if local is None or not hasattr(local, "_get_initial_points"):
        return
    original = local._get_initial_points

    def ordered(*args: Any, **kwargs: Any) -> list:
        return sorted(original(*args, **kwargs), key=lambda c: c.get_array().tobytes())

    local._get_initial_points = ordered


@register_optimizer("smac-hpo")
class SMACHPO(Optimizer):
    """SMAC3's ``HyperparameterOptimizationFacade`` with its own model and acquisition, behind the same repair.

    Parameters
    ----------
    n_trials
        The scenario's trial budget (SMAC3 sizes its initial design from it).
    n_initial
        Sobol initial configurations (SMAC3's default would be 10 per hyperparameter, capped at a quarter of
        ``n_trials``).
    challengers, local_search_iterations
        Acquisition maximizer sizes; smaller than SMAC3's defaults (10000, 10) so that an ask over 2L ordinal
        hyperparameters stays near a second on 2 CPU cores.
    """

    name = "smac-hpo"

    def __init__(
        self,
        space: SearchSpace,
        memory_model: MemoryModel,
        budget: "Budget | int | str",
        seed: int = 0,
        *,
        priors=None,
        n_trials: int = 200,
        n_initial: int = 10,
        challengers: int = 1000,
        local_search_iterations: int = 5,
    ) -> None:
        super().__init__(space, memory_model, budget, seed, priors=priors)
        self.n_trials, self.n_initial = n_trials, n_initial
        self.challengers, self.local_search_iterations = challengers, local_search_iterations
        self._smac: Optional[HyperparameterOptimizationFacade] = None
        self._trial_seed: Optional[int] = None
        self._infos: dict[QRConfig, list[Any]] = {}

    def _build(self) -> HyperparameterOptimizationFacade:
        from smac import HyperparameterOptimizationFacade as HPO
        from smac import Scenario
        from smac.model.random_forest.random_forest import RandomForest

        from qra_bench.search.smac_bridge import Codec, configuration_space, quiet_smac

        quiet_smac()
        cs = configuration_space(self.space, seed=self.seed)
        self._codec = Codec(self.space, cs)
        self._outdir = tempfile.mkdtemp(prefix="qra-smac-hpo-")
        weakref.finalize(self, shutil.rmtree, self._outdir, True)
        scenario = Scenario(
            cs, deterministic=True, n_trials=self.n_trials, seed=self.seed, output_directory=Path(self._outdir)
        )
        self._smac = HPO(
            scenario,
            None,
            # HPO.get_model's random forest with two speed-only changes: one thread (n_jobs=-1 waits on a joblib
            # pool for 10 small trees on a shared 2-core machine) and no leaf cap (max_leaf_nodes=2**20 makes
            # scikit-learn's best-first builder allocate ~2M nodes per tree, 0.25 s each; the trees grow fully
            # either way).
            model=RandomForest(
                configspace=cs,
                log_y=True,
                n_trees=10,
                bootstrapping=True,
                ratio_features=1.0,
                min_samples_split=2,
                min_samples_leaf=1,
                max_depth=2**20,
                max_leaf_nodes=None,  # type: ignore[arg-type]  # smac annotates int; scikit-learn takes None
                seed=self.seed,
                n_jobs=1,
            ),
            initial_design=HPO.get_initial_design(scenario, n_configs=self.n_initial),
            acquisition_maximizer=HPO.get_acquisition_maximizer(
                scenario, challengers=self.challengers, local_search_iterations=self.local_search_iterations
            ),
            intensifier=HPO.get_intensifier(scenario, max_config_calls=1),
            logging_level=False,
            overwrite=True,
        )
        _order_local_search_starts(self._smac._acquisition_maximizer)
        return self._smac

    def _ask(self) -> QRConfig:
        smac = self._smac if self._smac is not None else self._build()
        info = smac.ask()
        self._trial_seed = info.seed
        cfg = self.ctx.ensure_feasible(self._codec.to_qrconfig(info.config))
        self._infos.setdefault(cfg, []).append(info)
        return cfg

    def _tell(self, obs: Observation) -> None:
        from qra_bench.search.smac_bridge import trial_value, user_trial

        smac = self._smac if self._smac is not None else self._build()
        infos = self._infos.get(obs.config)
        info = infos.pop(0) if infos else user_trial(self._codec, *self.ctx.indices(obs.config), self._trial_seed)
        smac.tell(info, trial_value(obs.value), save=False)


# ---------------------------------------------------------------------------------------------------------
# LQ-LoRA-style integer program
# ---------------------------------------------------------------------------------------------------------
def quantization_error(bits: Sequence[int]) -> np.ndarray:
    """Relative quantization error of each bit width: ``4^-(b - b_min)`` (the noise power of a uniform
    quantizer falls fourfold per bit), 1 at the lowest width and 0 at 16 bits (unquantized)."""
    b = np.asarray(bits, dtype=float)
    return np.where(b >= 16, 0.0, 4.0 ** -(b - b.min()))


def milp_config(
    space: SearchSpace,
    memory_model: MemoryModel,
    budget: "Budget | int | str",
    sensitivity: Sequence[float] | np.ndarray,
    rank: Optional[int] = None,
) -> QRConfig:
    """Bits per block minimizing total quantization sensitivity under the budget, at one fixed rank.

    The integer program (LQ-LoRA's, with our memory model): binary ``x[l, i]`` = block ``l`` at bit rung ``i``;
    exactly one rung per block; ``sum x[l, i] * bit_bytes[l, i] <= budget - constant - rank bytes``;
    minimize ``sum x[l, i] * c[l, i]``. ``sensitivity`` is either an (L, n_bit_rungs) cost matrix ``c`` (e.g.
    measured reconstruction errors) or a per-block vector ``s`` (e.g. Stage 0's raw ``I_q``, the damage at
    the lowest width), expanded as ``c[l, i] = max(s_l, 0) * quantization_error(bits)[i]``. A 1e-9 relative
    tie-breaker prefers lower error when costs are equal. Solved with :func:`scipy.optimize.milp` (HiGHS).

    ``rank`` defaults to 16 (or the ladder's largest); if even the lowest bits do not fit at that rank, the
    next lower rank rung is used.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp

    ctx = SearchContext.build(space, memory_model, budget)
    L, nb = space.n_blocks, len(space.bits)
    s = np.asarray(sensitivity, dtype=float)
    if s.shape == (L,):
        cost = np.maximum(s, 0.0)[:, None] * quantization_error(space.bits)[None, :]
    elif s.shape == (L, nb):
        cost = s.copy()
    else:
        raise QRBenchError(f"sensitivity must have shape ({L},) or ({L}, {nb}), got {s.shape}")
    if not np.all(np.isfinite(cost)):
        raise QRBenchError("sensitivity must be finite")
    scale = max(float(np.abs(cost).max()), 1e-12)
    c = (cost + 1e-9 * scale * quantization_error(space.bits)[None, :]).reshape(-1)

    rank = _default_rank(space) if rank is None else rank
    if rank not in space.ranks:
        raise QRBenchError(f"rank {rank} not in the rank ladder {list(space.ranks)}")
    mm = memory_model
    A_one = np.kron(np.eye(L), np.ones((1, nb)))  # one rung per block
    for j in range(space.ranks.index(rank), -1, -1):
        room = ctx.budget_bytes - mm.constant - int(mm.rank_cost[np.arange(L), j].sum())
        if room < int(mm.bit_cost[:, 0].sum()):
            continue
        res = milp(
            c,
            integrality=np.ones(L * nb),
            bounds=Bounds(0, 1),
            constraints=[
                LinearConstraint(A_one, 1, 1),
                LinearConstraint(mm.bit_cost.reshape(1, -1).astype(float), -np.inf, room),
            ],
        )
        if res.status != 0 or res.x is None:
            continue
        bit_idx = np.argmax(np.rint(res.x).reshape(L, nb), axis=1)
        cfg = space.from_indices(bit_idx, np.full(L, j))
        if ctx.is_feasible(cfg):
            return cfg
    raise QRBenchError(f"no configuration of the bit ladder fits budget {ctx.budget.name!r} at any rank <= {rank}")


@register_optimizer("lq-lora-milp")
class MilpBaseline(Optimizer):
    """Asks :func:`milp_config` every time. Sensitivities: ``sensitivity=`` or the priors' ``raw_q``."""

    name = "lq-lora-milp"

    def __init__(
        self,
        space: SearchSpace,
        memory_model: MemoryModel,
        budget: "Budget | int | str",
        seed: int = 0,
        *,
        priors=None,
        sensitivity: Optional[Sequence[float] | np.ndarray] = None,
        rank: Optional[int] = None,
    ) -> None:
        super().__init__(space, memory_model, budget, seed, priors=priors)
        if sensitivity is None:
            if self.ctx.priors is None or self.ctx.priors.raw_q is None:
                raise QRBenchError(
                    "lq-lora-milp needs per-block sensitivities: pass sensitivity=... or priors with raw_q"
                )
            sensitivity = self.ctx.priors.raw_q
        self.config = milp_config(space, memory_model, self.budget, sensitivity, rank)

    def _ask(self) -> QRConfig:
        return self.config
