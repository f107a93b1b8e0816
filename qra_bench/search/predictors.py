"""Predictors: what the search layer knows about surrogates.

A predictor is any callable ``predictor(bit_idx, rank_idx) -> (mean, std)`` over rung-index arrays of shape
(n, L), higher mean = better quality. This module holds the type, the counting wrapper the search layer
reports costs with, the adapter for scikit-learn style models, and the fallback screens an optimizer fits to
its own observations (Bayesian linear regression, a Gaussian process).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Optional

import numpy as np

from qra_bench.errors import QRBenchError
from qra_bench.space import SearchSpace

__all__ = [
    "GP_REFIT_EVERY",
    "CountingPredictor",
    "GPPredictor",
    "LinearPredictor",
    "Predictor",
    "predictor_from_estimator",
    "refit_gp",
]

#: ``predictor(bit_idx (n, L), rank_idx (n, L)) -> (mean (n,), std (n,))``; higher mean = better quality.
Predictor = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class CountingPredictor:
    """Wraps a predictor: checks shapes, floors std at 0, counts calls and predicted rows.

    ``rows`` is the cost measure the search layer reports ("predictor calls" = configurations predicted).
    """

    def __init__(self, predictor: Predictor, n_blocks: int) -> None:
        if isinstance(predictor, CountingPredictor):
            predictor = predictor.predictor
        self.predictor: Predictor = predictor
        self.n_blocks = n_blocks
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
        self, space: SearchSpace, prior: Optional[Predictor] = None, min_gp: int = 8, seed: int = 0, kernel: Any = None
    ) -> None:
        self.space, self.prior, self.min_gp, self.seed = space, prior, min_gp, seed
        self.kernel = kernel  # fitted hyper-parameters to reuse as they are (no marginal-likelihood search)
        # None (no fit yet, or too few observations with a prior), a LinearPredictor, or a fitted scikit-learn GP
        self._model: Any = None

    @property
    def kernel_(self) -> Any:
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
