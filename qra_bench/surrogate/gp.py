"""A Gaussian-process surrogate: scikit-learn's regressor with METHOD.md's Stage-2 kernel.

Kernel ``C * Matern(nu=2.5, one length scale per feature) + White``, on standardized features (each column
minus its training mean over its training std; constant columns stay 0 and drop out of the kernel), with the
target normalized by scikit-learn (``normalize_y``). The predictive standard deviation is the total one: it
includes the fitted white-noise level, so it describes a new *observation* (a trial with a new seed), which
is what interval coverage on held-out rows checks.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
from sklearn.utils.validation import check_X_y, check_array

__all__ = ["GPSurrogate"]


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
    random_state
        Seed of the optimizer restarts.

    Attributes
    ----------
    gp_ : sklearn.gaussian_process.GaussianProcessRegressor
    x_mean_, x_scale_ : ndarray
        Feature standardization learned in :meth:`fit`.
    kernel_ : kernel with the fitted hyper-parameters.
    n_features_in_ : int
    """

    def __init__(self, nu: float = 2.5, n_restarts_optimizer: int = 2,
                 length_scale_bounds: tuple[float, float] = (1e-2, 1e3),
                 noise_level_bounds: tuple[float, float] = (1e-6, 1e1), random_state: int = 0) -> None:
        self.nu = nu
        self.n_restarts_optimizer = n_restarts_optimizer
        self.length_scale_bounds = length_scale_bounds
        self.noise_level_bounds = noise_level_bounds
        self.random_state = random_state

    def fit(self, X, y, groups=None) -> "GPSurrogate":
        """Standardize the features and maximize the marginal likelihood. ``groups`` is accepted for a common
        interface with :class:`XGBEnsemble` and ignored (repeats of a configuration are what the white noise
        learns from)."""
        X, y = check_X_y(X, y, dtype=np.float64, y_numeric=True)
        self.x_mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.x_scale_ = np.where(scale > 1e-12, scale, 1.0)
        d = X.shape[1]
        kernel = (ConstantKernel(1.0, (1e-3, 1e3))
                  * Matern(length_scale=np.ones(d), length_scale_bounds=tuple(self.length_scale_bounds), nu=self.nu)
                  + WhiteKernel(noise_level=0.1, noise_level_bounds=tuple(self.noise_level_bounds)))
        gp = GaussianProcessRegressor(kernel=kernel, normalize_y=True, n_restarts_optimizer=int(self.n_restarts_optimizer),
                                      random_state=self.random_state)
        with warnings.catch_warnings():
            # A length scale at its bound means "this feature does not matter": expected, not a failure.
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit((X - self.x_mean_) / self.x_scale_, y)
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
        if not return_std:
            return self.gp_.predict(Z)
        mean, std = self.gp_.predict(Z, return_std=True)
        return mean, np.maximum(std, 1e-12)
