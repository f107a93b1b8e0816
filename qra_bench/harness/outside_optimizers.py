"""Outside optimizers behind the ask/tell protocol, registered by importing :mod:`qra_bench.harness`.

- ``optuna-tpe``: :class:`OptunaOptimizer`, any Optuna sampler (default ``TPESampler``) through an Optuna
  study's ask/tell, one categorical parameter per block and axis. Optuna is imported on first use.
- ``smac``: the SMAC3 hyperparameter-optimization facade, i.e. :class:`~qra_bench.search.baselines.SMACHPO`
  (registered there as ``smac-hpo``) under a second name; no second SMAC3 adapter.
- ``pool-random``: :class:`PoolRandomSearch`, random order over a fixed pool of configurations: the
  reference pool-based optimizer for the ``table`` backend (see :meth:`PoolRandomSearch.set_pool`).

Every proposal still goes through :meth:`Optimizer.ask`'s repair, so the memory budget holds.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from qra_bench.errors import QRBenchError
from qra_bench.memory import Budget, MemoryModel
from qra_bench.search.base import Observation, Optimizer, Priors
from qra_bench.search.registry import named_variant, register_optimizer
from qra_bench.search.baselines import SMACHPO
from qra_bench.space import QRConfig, SearchSpace

if TYPE_CHECKING:  # optuna is imported on first use; importance.py pulls in torch
    from optuna.distributions import BaseDistribution

    from qra_bench.importance import ImportancePriors

__all__ = ["OptunaOptimizer", "PoolRandomSearch"]


@register_optimizer("optuna-tpe")
class OptunaOptimizer(Optimizer):
    """An Optuna sampler over categorical ``bits_<l>`` and ``rank_<l>`` parameters.

    Parameters
    ----------
    sampler
        A factory ``sampler(seed) -> optuna.samplers.BaseSampler``; default ``TPESampler(seed=seed,
        n_startup_trials=n_startup, multivariate=True)``.
    n_startup
        Random trials before TPE's model is used.

    Repair: a proposal that does not fit the budget is repaired; the Optuna trial that proposed it is marked
    failed (so TPE does not learn that over-budget regions are good) and the repaired configuration is added
    to the study as a completed trial with its result. Configurations told without an ask (warm start) are
    added the same way.
    """

    name = "optuna-tpe"

    def __init__(
        self,
        space: SearchSpace,
        memory_model: MemoryModel,
        budget: "Budget | int | str",
        seed: int = 0,
        *,
        priors: "Priors | ImportancePriors | None" = None,
        sampler: Optional[Callable[[int], Any]] = None,
        n_startup: int = 10,
    ) -> None:
        super().__init__(space, memory_model, budget, seed, priors=priors)
        try:
            import optuna
        except ModuleNotFoundError:
            raise QRBenchError("optimizer 'optuna-tpe' needs optuna: pip install 'qra-bench[eval]'") from None

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        width = max(2, len(str(space.n_blocks - 1)))
        self._bit_names = [f"bits_{l:0{width}d}" for l in range(space.n_blocks)]
        self._rank_names = [f"rank_{l:0{width}d}" for l in range(space.n_blocks)]
        dist = optuna.distributions.CategoricalDistribution
        self._dists: dict[str, BaseDistribution] = {
            **{n: dist(list(space.bits)) for n in self._bit_names},
            **{n: dist(list(space.ranks)) for n in self._rank_names},
        }
        made = (
            sampler(self.seed)
            if sampler is not None
            else optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=n_startup, multivariate=True)
        )
        self.study = optuna.create_study(direction="maximize", sampler=made)
        self._asked: dict[QRConfig, list[tuple[Any, bool]]] = {}

    def _params(self, cfg: QRConfig) -> dict[str, int]:
        return {**dict(zip(self._bit_names, cfg.bits)), **dict(zip(self._rank_names, cfg.ranks))}

    def _ask(self) -> QRConfig:
        trial = self.study.ask(self._dists)
        proposed = QRConfig(
            bits=tuple(trial.params[n] for n in self._bit_names),
            ranks=tuple(trial.params[n] for n in self._rank_names),
        )
        cfg = self.ctx.ensure_feasible(proposed)
        self._asked.setdefault(cfg, []).append((trial, cfg == proposed))
        return cfg

    def _tell(self, obs: Observation) -> None:
        TrialState = self._optuna.trial.TrialState
        value = None if math.isnan(obs.value) else obs.value
        asked = self._asked.get(obs.config)
        trial, unchanged = asked.pop(0) if asked else (None, False)
        if trial is not None and unchanged:
            self.study.tell(trial, value, state=TrialState.COMPLETE if value is not None else TrialState.FAIL)
            return
        if trial is not None:
            self.study.tell(trial, state=TrialState.FAIL)
        if value is not None:
            self.study.add_trial(
                self._optuna.trial.create_trial(params=self._params(obs.config), distributions=self._dists, value=value)
            )


register_optimizer("smac")(
    named_variant(
        SMACHPO,
        "smac",
        "SMAC3's hyperparameter-optimization facade: the same optimizer as smac-hpo, under the "
        "name the benchmark runner uses.",
    )
)


@register_optimizer("pool-random")
class PoolRandomSearch(Optimizer):
    """Asks the configurations of a pool in a seeded random order, then starts a new order.

    Pool-based: the benchmark runner calls :meth:`set_pool` with :meth:`Benchmark.pool` (the table's
    configurations that fit the budget) before the first ask; ``pool=`` does the same at construction.
    """

    name = "pool-random"

    def __init__(
        self,
        space: SearchSpace,
        memory_model: MemoryModel,
        budget: "Budget | int | str",
        seed: int = 0,
        *,
        priors: "Priors | ImportancePriors | None" = None,
        pool: Optional[Sequence[QRConfig]] = None,
    ) -> None:
        super().__init__(space, memory_model, budget, seed, priors=priors)
        self._pool: list[QRConfig] = []
        self._order: list[int] = []
        if pool is not None:
            self.set_pool(pool)

    def set_pool(self, pool: Sequence[QRConfig]) -> None:
        """The configurations to choose from (each validated; those over the budget are dropped)."""
        self._pool = [c for c in (self.space.validate(c) for c in pool) if self.ctx.is_feasible(c)]
        self._order = []

    def _ask(self) -> QRConfig:
        if not self._pool:
            raise QRBenchError("pool-random has no pool: call set_pool(configs) (the runner passes Benchmark.pool())")
        if not self._order:
            self._order = [int(i) for i in self.rng.permutation(len(self._pool))][::-1]
        return self._pool[self._order.pop()]
