"""A Gaussian-process surrogate: scikit-learn's regressor with the method's Stage-2 kernel.

Kernel ``C * Matern(nu=2.5, one length scale per feature) + White``, on standardized features (each column
minus its training mean over its training std; constant columns stay 0 and drop out of the kernel), with the
target normalized by scikit-learn (``normalize_y``). The predictive standard deviation is the total one: it
includes the fitted white-noise level, so it describes a new *observation* (a trial with a new seed), which
is what interval coverage on held-out rows checks.

Hyper-parameters are fitted by scikit-learn's usual procedure (L-BFGS-B on the log marginal likelihood,
``n_restarts_optimizer`` extra log-uniform starts) but with our own likelihood gradient: scikit-learn builds
an (n, n, d) gradient tensor for every evaluation, about 0.6 s for 400 rows and 24 features on one core; the
closed form below, :func:`matern52_neg_log_marginal_likelihood`, needs two (n, n) products and is about
30 times faster. It is checked against scikit-learn's own value and gradient in the tests.

Exact GP training is O(n^3) in time and O(n^2) in memory, so beyond ``max_train_rows`` rows the GP is fitted on
a seeded random subset of them ("subset of data", Rasmussen & Williams sec. 8.3.3): the shared table grows by
thousands of rows, and every fit of the quality report (folds, learning curve) grows with it as n^3. The subset is
recorded in the fitted estimator (``train_rows_``).
"""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
from scipy.linalg import cho_factor, cho_solve, lapack
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from sklearn.utils.validation import check_X_y, check_array
from threadpoolctl import ThreadpoolController

__all__ = ["GPSurrogate", "matern52_neg_log_marginal_likelihood"]

SQRT5 = np.sqrt(5.0)
_THREADPOOLS: Optional[ThreadpoolController] = None


def _blas_limit(threads: Optional[int]):
    """A context limiting BLAS threads; the controller is built once (building it costs about 3 ms)."""
    global _THREADPOOLS
    if _THREADPOOLS is None:
        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=threads, user_api="blas")


JITTER = 1e-10  # scikit-learn's default ``alpha``, added to the diagonal


def matern52_neg_log_marginal_likelihood(
    theta: np.ndarray, X: np.ndarray, y: np.ndarray, alpha: float = JITTER
) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood of ``C * Matern(nu=2.5, ARD) + White`` and its gradient.

    ``theta`` is scikit-learn's log-parameter vector of that kernel, ``[log C, log l_1 .. log l_d, log w]``.
    With ``r_ij = ||(x_i - x_j) / l||``, ``s = sqrt(5) r``, ``K = C (1 + s + s^2/3) e^{-s} + (w + alpha) I`` and
    ``A = a a^T - K^{-1}`` (``a = K^{-1} y``), the gradient of the log likelihood along ``log t`` is
    ``0.5 sum(A * dK/dlog t)``. Along ``log l_k``, ``dK/dlog l_k = G * (x_ik - x_jk)^2 / l_k^2`` with
    ``G = C (5/3) (1 + s) e^{-s}``, so for ``B = A * G`` all ``d`` components are
    ``(sum_i x_ik^2 (B 1)_i - x_k^T B x_k) / l_k^2``: O(n^2 d), without an (n, n, d) tensor.
    """
    n, d = X.shape
    c = np.exp(theta[0])
    ls = np.exp(theta[1 : 1 + d])
    w = np.exp(theta[1 + d])
    Z = X / ls
    sq = np.einsum("ij,ij->i", Z, Z)
    r2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (Z @ Z.T), 0.0)
    np.fill_diagonal(r2, 0.0)
    s = SQRT5 * np.sqrt(r2)
    e = np.exp(-s)
    K = c * (1.0 + s + r2 * (5.0 / 3.0)) * e
    K[np.diag_indices_from(K)] += w + alpha
    try:
        factor = cho_factor(K, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return np.inf, np.zeros_like(theta)
    a = cho_solve(factor, y, check_finite=False)
    log_det = 2.0 * np.sum(np.log(np.diag(factor[0])))
    nll = 0.5 * float(y @ a) + 0.5 * log_det + 0.5 * n * np.log(2.0 * np.pi)
    inv, info = lapack.dpotri(factor[0], lower=1)  # K^{-1} from the factor: half the work of solving for I
    if info != 0:
        return np.inf, np.zeros_like(theta)
    inv = np.tril(inv) + np.tril(inv, -1).T
    A = np.outer(a, a) - inv
    grad = np.empty_like(theta)
    Km = K.copy()
    Km[np.diag_indices_from(Km)] -= w + alpha
    grad[0] = 0.5 * np.sum(A * Km)
    B = A * (c * (5.0 / 3.0) * (1.0 + s) * e)
    grad[1 : 1 + d] = np.square(Z).T @ B.sum(axis=1) - np.einsum("ik,ij,jk->k", Z, B, Z, optimize=True)
    grad[1 + d] = 0.5 * w * np.trace(A)
    return nll, -grad


class GPSurrogate(RegressorMixin, BaseEstimator):
    """Matérn-5/2 ARD Gaussian process with white noise (scikit-learn estimator contract).

    Parameters
    ----------
    nu
        Matérn smoothness (2.5 = twice differentiable).
    n_restarts_optimizer
        Extra random starts of the marginal-likelihood optimizer (seeded by ``random_state``).
    length_scale_bounds, noise_level_bounds
        Bounds of every length scale (standardized feature units) and of the white-noise variance (units of
        the normalized target).
    max_iter
        L-BFGS-B iterations per start.
    max_train_rows
        Fit on at most this many training rows, a random subset drawn with ``random_state`` (None: all).
    blas_threads
        BLAS threads while fitting and predicting (None: the library's default). One by default: on a
        shared two-core machine a second spinning BLAS thread made a 400 x 400 Cholesky 30 times slower.
    random_state
        Seed of the optimizer restarts.

    Attributes
    ----------
    gp_ : sklearn.gaussian_process.GaussianProcessRegressor
    x_mean_, x_scale_ : ndarray
        Feature standardization learned in :meth:`fit`.
    kernel_ : kernel with the fitted hyper-parameters.
    n_features_in_ : int
    train_rows_ : ndarray
        Indices of the training rows the GP was fitted on (all of them below ``max_train_rows``).
    """

    def __init__(
        self,
        nu: float = 2.5,
        n_restarts_optimizer: int = 2,
        length_scale_bounds: tuple[float, float] = (1e-2, 1e3),
        noise_level_bounds: tuple[float, float] = (1e-6, 1e1),
        max_iter: int = 200,
        max_train_rows: Optional[int] = 1200,
        blas_threads: Optional[int] = 1,
        random_state: int = 0,
    ) -> None:
        self.nu = nu
        self.n_restarts_optimizer = n_restarts_optimizer
        self.length_scale_bounds = length_scale_bounds
        self.noise_level_bounds = noise_level_bounds
        self.max_iter = max_iter
        self.max_train_rows = max_train_rows
        self.blas_threads = blas_threads
        self.random_state = random_state

    def fit(self, X, y, groups=None) -> "GPSurrogate":
        """Standardize the features and maximize the marginal likelihood. ``groups`` is accepted for a common
        interface with :class:`XGBEnsemble` and ignored (repeats of a configuration are what the white noise
        learns from)."""
        X, y = check_X_y(X, y, dtype=np.float64, y_numeric=True)
        rows = np.arange(len(y))
        if self.max_train_rows is not None and len(y) > int(self.max_train_rows):
            rng = np.random.default_rng(self.random_state)
            rows = np.sort(rng.choice(len(y), size=int(self.max_train_rows), replace=False))
            X, y = X[rows], y[rows]
        self.train_rows_ = rows
        self.x_mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.x_scale_ = np.where(scale > 1e-12, scale, 1.0)
        d = X.shape[1]
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(
            length_scale=np.ones(d), length_scale_bounds=tuple(self.length_scale_bounds), nu=self.nu
        ) + WhiteKernel(noise_level=0.1, noise_level_bounds=tuple(self.noise_level_bounds))
        Z = (X - self.x_mean_) / self.x_scale_
        y_std = float(np.std(y))
        y_norm = (y - np.mean(y)) / (y_std if y_std > 0 else 1.0)  # what normalize_y makes of y

        def optimizer(_sklearn_objective, initial_theta: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, float]:
            result = minimize(
                matern52_neg_log_marginal_likelihood,
                initial_theta,
                args=(Z, y_norm),
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": int(self.max_iter)},
            )
            return result.x, float(result.fun)

        gp = GaussianProcessRegressor(
            kernel=kernel,
            normalize_y=True,
            n_restarts_optimizer=int(self.n_restarts_optimizer),
            optimizer=optimizer,
            random_state=self.random_state,
        )
        with warnings.catch_warnings(), _blas_limit(self.blas_threads):
            # A length scale at its bound means "this feature does not matter": expected, not a failure.
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit(Z, y)
        gp.optimizer = "fmin_l_bfgs_b"  # the closure holds the training data and cannot be pickled; same method
        self.gp_ = gp
        self.kernel_ = gp.kernel_
        self.n_features_in_ = d
        return self

    def predict(self, X, return_std: bool = False):
        """Posterior mean, shape (n,); with ``return_std`` also the total predictive std (noise included)."""
        if not hasattr(self, "gp_"):
            raise NotFittedError("GPSurrogate is not fitted yet; call fit(X, y) first")
        X = check_array(X, dtype=np.float64)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features; the GP was fitted on {self.n_features_in_}")
        Z = (X - self.x_mean_) / self.x_scale_
        with _blas_limit(self.blas_threads):
            if not return_std:
                return self.gp_.predict(Z)
            mean, std = self.gp_.predict(Z, return_std=True)
        return mean, np.maximum(std, 1e-12)
