"""The optimizer protocol shared by every search algorithm: ask/tell, the search context, the registry.

Every optimizer is an ask/tell object built from ``(space, memory_model, budget, seed, **kw)``:
``ask() -> QRConfig`` proposes a configuration, ``tell(config, result)`` reports its quality (higher is
better). The base class owns what all of them must share: the :class:`SearchContext` (the only place a search
algorithm touches :meth:`MemoryModel.repair` and :meth:`MemoryModel.is_feasible`), the history, the incumbent,
and the final feasibility gate of :meth:`Optimizer.ask`, so no optimizer can hand out an over-budget
configuration even by mistake.

Optimizers that screen candidates take a *predictor*: any callable
``predictor(bit_idx, rank_idx) -> (mean, std)`` over rung-index arrays of shape (n, L), higher mean = better.
It is the only thing the search layer knows about surrogates (see :func:`predictor_from_estimator` for
scikit-learn style models).
"""

from __future__ import annotations

import importlib.metadata
import inspect
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Optional, Sequence

import numpy as np

from qra_bench.errors import QRBenchError
from qra_bench.memory import Budget, MemoryModel
from qra_bench.space import QRConfig, SearchSpace

if TYPE_CHECKING:  # importance.py pulls in torch; the search layer only needs its two vectors
    from qra_bench.importance import ImportancePriors

__all__ = [
    "CountingPredictor",
    "GPPredictor",
    "LinearPredictor",
    "Observation",
    "Optimizer",
    "Predictor",
    "Priors",
    "SearchContext",
    "as_priors",
    "available_optimizers",
    "make_optimizer",
    "observe_and_suggest",
    "predictor_from_estimator",
    "register_optimizer",
    "result_value",
    "ENTRY_POINT_GROUP",
]

#: ``predictor(bit_idx (n, L), rank_idx (n, L)) -> (mean (n,), std (n,))``; higher mean = better quality.
Predictor = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
ENTRY_POINT_GROUP = "qra_bench.optimizers"


# ---------------------------------------------------------------------------------------------------------
# Priors and predictors
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
    out = {}
    for name in ("importance_q", "importance_r", "raw_q", "raw_r"):
        values = getattr(obj, name, None)
        if values is None:
            if name.startswith("importance"):
                raise QRBenchError(f"priors need {name} ({n_blocks} numbers in [0, 1]); got none")
            out[name] = None
            continue
        arr = np.asarray(values, dtype=float)
        if arr.shape != (n_blocks,) or not np.all(np.isfinite(arr)):
            raise QRBenchError(f"priors.{name} must be {n_blocks} finite numbers, got shape {arr.shape}")
        if name.startswith("importance") and (arr.min() < 0 or arr.max() > 1):
            raise QRBenchError(
                f"priors.{name} must lie in [0, 1] (min-max normalized), got {arr.min():g}..{arr.max():g}"
            )
        out[name] = tuple(float(x) for x in arr)
    return Priors(**out)


class CountingPredictor:
    """Wraps a predictor: checks shapes, floors std at 0, counts calls and predicted rows.

    ``rows`` is the cost measure the search layer reports ("predictor calls" = configurations predicted).
    """

    def __init__(self, predictor: Predictor, n_blocks: int) -> None:
        if isinstance(predictor, CountingPredictor):
            predictor = predictor.predictor
        self.predictor, self.n_blocks = predictor, n_blocks
        self.calls = 0
        self.rows = 0

    def __call__(self, bit_idx: np.ndarray, rank_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bi, ri = np.atleast_2d(np.asarray(bit_idx, dtype=np.int64)), np.atleast_2d(np.asarray(rank_idx, dtype=np.int64))
        if bi.shape != ri.shape or bi.shape[1] != self.n_blocks:
            raise QRBenchError(
                f"predictor input must be two (n, {self.n_blocks}) index arrays, got {bi.shape}, {ri.shape}"
            )
        n = bi.shape[0]
        if n == 0:
            return np.zeros(0), np.zeros(0)
        mean, std = self.predictor(bi, ri)
        mean = np.asarray(mean, dtype=float).reshape(-1)
        std = np.asarray(std, dtype=float).reshape(-1)
        if mean.shape != (n,) or std.shape != (n,):
            raise QRBenchError(f"predictor returned mean {mean.shape} and std {std.shape} for {n} configurations")
        self.calls += 1
        self.rows += n
        return mean, np.maximum(np.nan_to_num(std, nan=0.0), 0.0)


def predictor_from_estimator(
    model: Any, space: SearchSpace, features: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
) -> Predictor:
    """Adapt a scikit-learn style regressor with ``predict(X, return_std=True)`` into a :data:`Predictor`.

    ``features(bit_idx, rank_idx)`` builds ``X``; default :meth:`SearchSpace.encode_indices` (the 2L+2 ordinal
    encoding). A model whose ``predict`` has no ``return_std`` gets std 0.
    """
    feats = features or space.encode_indices
    takes_std = "return_std" in inspect.signature(model.predict).parameters

    def predict(bit_idx: np.ndarray, rank_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = feats(bit_idx, rank_idx)
        if takes_std:
            mean, std = model.predict(X, return_std=True)
        else:
            mean, std = model.predict(X), np.zeros(len(X))
        return np.asarray(mean, dtype=float), np.asarray(std, dtype=float)

    return predict


class LinearPredictor:
    """Bayesian linear regression on the 2L+2 ordinal encoding: the fallback screen of an optimizer that was
    given no surrogate, fitted to its own observations.

    Prior ``w ~ N(0, I / alpha)`` on standardized targets; the noise variance is the mean squared residual
    (floored), so the std grows away from the data. Deliberately simple: it only has to rank offspring better
    than chance, and a surrogate from :mod:`qra_bench.surrogate` replaces it whenever one is available.
    """

    def __init__(self, space: SearchSpace, alpha: float = 1.0) -> None:
        self.space, self.alpha = space, alpha
        self.n_obs_ = 0

    def fit(self, bit_idx: np.ndarray, rank_idx: np.ndarray, y: np.ndarray) -> "LinearPredictor":
        X = self._design(bit_idx, rank_idx)
        y = np.asarray(y, dtype=float)
        self.y_mean_ = float(y.mean()) if len(y) else 0.0
        self.y_scale_ = float(y.std()) if len(y) > 1 and y.std() > 0 else 1.0
        t = (y - self.y_mean_) / self.y_scale_
        A = X.T @ X + self.alpha * np.eye(X.shape[1])
        self.A_inv_ = np.linalg.inv(A)
        self.w_ = self.A_inv_ @ X.T @ t
        resid = t - X @ self.w_
        self.noise_ = max(float(np.mean(resid**2)) if len(t) else 1.0, 1e-4)
        self.n_obs_ = len(y)
        return self

    def _design(self, bit_idx: np.ndarray, rank_idx: np.ndarray) -> np.ndarray:
        X = self.space.encode_indices(np.asarray(bit_idx), np.asarray(rank_idx))
        return np.concatenate([X, np.ones((X.shape[0], 1))], axis=1)

    def __call__(self, bit_idx: np.ndarray, rank_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = self._design(bit_idx, rank_idx)
        if self.n_obs_ == 0:
            return np.zeros(len(X)), np.ones(len(X))
        mean = X @ self.w_
        var = self.noise_ * (1.0 + np.einsum("ij,jk,ik->i", X, self.A_inv_, X))
        return mean * self.y_scale_ + self.y_mean_, np.sqrt(var) * self.y_scale_


class GPPredictor:
    """Gaussian process on the 2L+2 ordinal encoding (Matern-5/2 with one length scale per feature, plus white
    noise; the Stage-2 model of ``docs/algorithm.md``), fitted to an optimizer's own observations.

    Without ``prior`` it models the quality itself: the screen of an optimizer given no surrogate. With a
    ``prior`` predictor (a surrogate, or a screen fitted on low-fidelity rows) it models the prior's residuals
    at the observed configurations, so the prior's bias near the incumbent is corrected by what was measured
    (mean = prior mean + GP mean, std = the GP's). Below ``min_gp`` observations the kernel's hyper-parameters
    cannot be estimated: it returns the prior unchanged, or with no prior a :class:`LinearPredictor`.

    Why not the linear model throughout: the landscape is not additive in rung positions (one block at the
    lowest bit width can cost more than all the others together), and neither a linear screen nor a fixed
    prior ranks the neighbours of a good incumbent reliably on the shipped table.
    """

    def __init__(
        self, space: SearchSpace, prior: Optional[Predictor] = None, min_gp: int = 8, seed: int = 0, kernel=None
    ) -> None:
        self.space, self.prior, self.min_gp, self.seed = space, prior, min_gp, seed
        self.kernel = kernel  # fitted hyper-parameters to reuse as they are (no marginal-likelihood search)
        self._model = None

    @property
    def kernel_(self):
        """The fitted kernel (None before the GP is fitted): pass it as ``kernel`` to refit cheaply."""
        return getattr(self._model, "kernel_", None)

    def fit(self, bit_idx: np.ndarray, rank_idx: np.ndarray, y: np.ndarray) -> "GPPredictor":
        import warnings

        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        y = np.asarray(y, dtype=float)
        if len(y) < self.min_gp:
            self._model = None if self.prior is not None else LinearPredictor(self.space).fit(bit_idx, rank_idx, y)
            return self
        if self.prior is not None:
            y = y - np.asarray(self.prior(np.asarray(bit_idx), np.asarray(rank_idx))[0], dtype=float)
        X = self.space.encode_indices(np.asarray(bit_idx), np.asarray(rank_idx))
        if self.kernel is not None:
            gp = GaussianProcessRegressor(self.kernel, normalize_y=True, optimizer=None)
        else:
            kernel = ConstantKernel(1.0, (1e-2, 1e2)) * Matern(np.ones(X.shape[1]), (0.05, 50.0), nu=2.5) + WhiteKernel(
                1e-2, (1e-6, 1.0)
            )
            gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=1, random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings at the length-scale bounds are expected
            self._model = gp.fit(X, y)
        return self

    def __call__(self, bit_idx: np.ndarray, rank_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._model is None:
            if self.prior is not None:
                return self.prior(bit_idx, rank_idx)
            n = np.atleast_2d(bit_idx).shape[0]
            return np.zeros(n), np.ones(n)
        if isinstance(self._model, LinearPredictor):
            return self._model(bit_idx, rank_idx)
        X = self.space.encode_indices(np.asarray(bit_idx), np.asarray(rank_idx))
        mean, std = self._model.predict(X, return_std=True)
        if self.prior is not None:
            mean = mean + np.asarray(self.prior(bit_idx, rank_idx)[0], dtype=float)
        return np.asarray(mean, dtype=float), np.asarray(std, dtype=float)


#: Told results between two marginal-likelihood fits of an optimizer's GP hyper-parameters (about 1 s each);
#: in between the last fitted kernel is reused as it is.
GP_REFIT_EVERY = 5


def refit_gp(
    previous: Optional[GPPredictor],
    space: SearchSpace,
    prior: Optional[Predictor],
    seed: int,
    bit_idx: np.ndarray,
    rank_idx: np.ndarray,
    y: np.ndarray,
) -> GPPredictor:
    """An optimizer's GP fitted to its told results: ``previous``'s kernel is reused as it is (milliseconds),
    except every :data:`GP_REFIT_EVERY` results, when the hyper-parameters are re-estimated."""
    kernel = previous.kernel_ if previous is not None and len(y) % GP_REFIT_EVERY else None
    return GPPredictor(space, prior=prior, seed=seed, kernel=kernel).fit(bit_idx, rank_idx, y)


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
    importance_q: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    importance_r: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]

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

    name: ClassVar[str] = "optimizer"

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


# ---------------------------------------------------------------------------------------------------------
# observe_and_suggest: a plain function becomes an Optimizer
# ---------------------------------------------------------------------------------------------------------
def observe_and_suggest(fn: Callable[..., QRConfig], name: Optional[str] = None) -> type[Optimizer]:
    """Turn ``fn(observed, pending)`` (or ``fn(observed, pending, ctx)``) into an :class:`Optimizer` class.

    ``observed`` is a list of ``(QRConfig, quality)`` pairs in tell order, ``pending`` the asked but untold
    configurations. A third parameter receives a :class:`FunctionContext` (space, memory model, budget,
    priors, a seeded ``numpy`` generator and :meth:`SearchContext.repair`). Whatever ``fn`` returns is repaired
    to the budget. Register the result with ``register_optimizer("name")(observe_and_suggest(fn))``.
    """
    n_params = len(
        [p for p in inspect.signature(fn).parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    )
    wants_ctx = n_params >= 3

    class FunctionOptimizer(Optimizer):
        def _ask(self) -> QRConfig:
            observed = [(o.config, o.value) for o in self.history]
            pending = list(self.pending)
            if wants_ctx:
                return fn(observed, pending, FunctionContext(self.ctx, self.rng))
            return fn(observed, pending)

    FunctionOptimizer.name = name or getattr(fn, "__name__", "function")
    FunctionOptimizer.__name__ = FunctionOptimizer.__qualname__ = f"ObserveAndSuggest[{FunctionOptimizer.name}]"
    FunctionOptimizer.__doc__ = fn.__doc__
    return FunctionOptimizer


@dataclass(frozen=True)
class FunctionContext:
    """What an ``observe_and_suggest`` function may use: the search context and a seeded generator."""

    search: SearchContext
    rng: np.random.Generator

    @property
    def space(self) -> SearchSpace:
        return self.search.space

    def repair(self, cfg: QRConfig) -> QRConfig:
        return self.search.repair(cfg)


# ---------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------
_REGISTRY: dict[str, Callable[..., Optimizer]] = {}
_ENTRY_POINTS_LOADED = False


def register_optimizer(name: str) -> Callable[[Callable[..., Optimizer]], Callable[..., Optimizer]]:
    """Decorator: register an Optimizer class (or a factory with the same signature) under ``name``."""

    def deco(factory: Callable[..., Optimizer]) -> Callable[..., Optimizer]:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise QRBenchError(f"optimizer name {name!r} is already registered to {_REGISTRY[name]!r}")
        _REGISTRY[name] = factory
        return factory

    return deco


def _load_entry_points() -> None:
    """Register optimizers that other packages declare under the ``qra_bench.optimizers`` entry-point group."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _REGISTRY:
            _REGISTRY[ep.name] = ep.load()


def available_optimizers() -> list[str]:
    """Registered optimizer names, built-in and from entry points, sorted."""
    _load_entry_points()
    return sorted(_REGISTRY)


def make_optimizer(
    name: str, space: SearchSpace, memory_model: MemoryModel, budget: "Budget | int | str", seed: int = 0, **kw: Any
) -> Optimizer:
    """Build the optimizer registered as ``name``; ``kw`` goes to its constructor (e.g. ``priors``, ``predictor``)."""
    if name not in _REGISTRY:
        _load_entry_points()
    if name not in _REGISTRY:
        raise QRBenchError(f"unknown optimizer {name!r}; available: {', '.join(available_optimizers())}")
    return _REGISTRY[name](space, memory_model, budget, seed, **kw)


def named_variant(cls: type, name: str, doc: str, **fixed: Any) -> Callable[..., "Optimizer"]:
    """A registry factory: ``cls`` with some keyword arguments fixed, reporting ``name``."""

    def make(space, memory_model, budget, seed=0, **kw):
        opt = cls(space, memory_model, budget, seed, **fixed, **kw)
        opt.name = name
        return opt

    make.__name__ = f"make_{name.replace('-', '_')}"
    make.__doc__ = doc
    return make
