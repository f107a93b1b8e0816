"""A bagging ensemble of XGBoost regressors that predicts a mean and a standard deviation.

Each member is trained on its own row subsample (without replacement, drawn with seed ``random_state + m``);
the mean is the members' average. All members live in one multi-target booster (one output per member, one
output per tree): member ``m``'s trees see the gradient of target ``m`` only, and rows outside its subsample
get zero gradient and zero hessian, so they take no part in its splits or leaf values, exactly as if it had
been trained alone on its rows. Column subsampling is drawn per tree, so members also differ in their
columns. One booster means one ``inplace_predict`` call per query instead of one per member: the per-call
overhead (about 0.2 ms) is paid once.

The members' spread alone measures only the model's uncertainty about the mean and ignores the seed noise
of the observations, so the predictive standard deviation is

    std = sqrt((std_scale_ * spread)**2 + noise_std_**2)

with both numbers fitted by maximum likelihood on cross-fitted residuals: the training groups are split into
``calibration_folds`` parts, an uncalibrated ensemble with the same settings is fitted without each part and
predicts it, and (residual, spread) pairs of those predictions calibrate the full ensemble. Out-of-bag
residuals are not used: at an out-of-bag row the spread contains the deviation of the very member whose
prediction makes the residual, so the two correlate, the likelihood trusts the spread too much, and on the
stand-in table the 90 % intervals covered only 77 % of new rows. Cross-fitted, they covered 97 % with two
parts and 92 % with three (each calibration ensemble learns from fewer rows than the final one, so the
error leans to the safe side). With three parts calibration costs about two more fits of the ensemble.

Prediction goes through ``Booster.inplace_predict`` on the numpy array, which skips building a DMatrix.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_X_y, check_array

__all__ = ["XGBEnsemble"]


def _fit_std_calibration(residual: np.ndarray, spread: np.ndarray) -> tuple[float, float]:
    """``(scale, noise)`` maximizing the Gaussian likelihood of held-out ``residual`` under
    ``sd = sqrt((scale * spread)**2 + noise**2)``."""
    r2 = residual**2
    s2 = spread**2
    rms = float(np.sqrt(np.mean(r2))) if len(r2) else 1.0
    if len(r2) < 5 or rms == 0.0:
        return 1.0, max(rms, 1e-12)

    def nll(theta: np.ndarray) -> float:
        a2, b2 = np.exp(theta)
        var = a2 * s2 + b2
        return float(np.mean(np.log(var) + r2 / var))

    # Log-parameterized: both terms stay positive and the optimizer moves on a sensible scale.
    start = np.log([1.0, 0.5 * rms**2])
    res = minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 2000})
    a, b = np.sqrt(np.exp(res.x))
    return float(a), float(b)


class XGBEnsemble(RegressorMixin, BaseEstimator):
    """Bagged XGBoost regressors: mean and calibrated standard deviation (scikit-learn estimator contract).

    Parameters
    ----------
    n_members
        Boosters in the ensemble (>= 2; the spread needs two).
    subsample
        Fraction of the training rows (or of the groups passed to :meth:`fit`) each member sees, drawn
        without replacement with its own seed.
    n_estimators, max_depth, learning_rate, colsample_bytree, min_child_weight, reg_lambda
        Per-member XGBoost settings (trees, depth, shrinkage, column fraction per tree, minimum hessian per
        leaf, L2 penalty on leaf weights).
    calibrate
        Fit ``std_scale_`` and ``noise_std_`` on cross-fitted residuals; otherwise the std is the raw spread.
    calibration_folds
        Parts the groups are split into for the calibration (>= 2).
    random_state
        Seed; member ``m`` draws its rows with ``random_state + m``; the booster's column draws use
        ``random_state``.
    nthread
        Threads of training and prediction.

    Attributes
    ----------
    booster_ : xgboost.Booster
        All members: output ``m`` of the booster is member ``m``.
    y_offsets_ : ndarray of shape (n_members,)
        Each member's base score: the mean target of its rows.
    std_scale_ : float
        Multiplier of the members' spread.
    noise_std_ : float
        Observation noise std added in quadrature (target units).
    n_features_in_ : int
    """

    def __init__(
        self,
        n_members: int = 5,
        subsample: float = 0.8,
        n_estimators: int = 150,
        max_depth: int = 3,
        learning_rate: float = 0.1,
        colsample_bytree: float = 0.5,
        min_child_weight: float = 1.0,
        reg_lambda: float = 1.0,
        calibrate: bool = True,
        calibration_folds: int = 3,
        random_state: int = 0,
        nthread: int = 1,
    ) -> None:
        self.n_members = n_members
        self.subsample = subsample
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.calibrate = calibrate
        self.calibration_folds = calibration_folds
        self.random_state = random_state
        self.nthread = nthread

    def _booster_params(self, seed: int) -> dict:
        return {
            "objective": "reg:squarederror",
            "tree_method": "hist",
            "max_depth": int(self.max_depth),
            "eta": float(self.learning_rate),
            "colsample_bytree": float(self.colsample_bytree),
            "min_child_weight": float(self.min_child_weight),
            "lambda": float(self.reg_lambda),
            "nthread": int(self.nthread),
            "seed": int(seed),
            "verbosity": 0,
        }

    def fit(self, X, y, groups=None) -> "XGBEnsemble":
        """Fit every member on its subsample of rows, then the std calibration on cross-fitted residuals.

        ``groups`` (optional, one label per row) makes member subsamples and calibration parts hold whole
        groups: pass each row's configuration, so that no configuration is predicted by a model that saw its
        other seeds or fidelities (which would make the calibrated std too small).
        """
        import xgboost as xgb

        X, y = check_X_y(X, y, dtype=np.float64, y_numeric=True)
        if self.n_members < 2:
            raise ValueError(f"n_members must be >= 2 (the spread needs two members), got {self.n_members}")
        if self.calibrate and self.calibration_folds < 2:
            raise ValueError(f"calibration_folds must be >= 2, got {self.calibration_folds}")
        if not 0.0 < self.subsample <= 1.0:
            raise ValueError(f"subsample must be in (0, 1], got {self.subsample}")
        n, k = len(y), int(self.n_members)
        if groups is None:
            inverse = np.arange(n)
        else:
            if len(groups) != n:
                raise ValueError(f"groups has {len(groups)} labels for {n} rows")
            inverse = np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
        n_groups = int(inverse.max()) + 1 if n else 0
        n_take = min(n_groups, max(2, int(round(self.subsample * n_groups))))
        in_bag = np.zeros((n, k), dtype=bool)
        for m in range(k):
            chosen = np.zeros(n_groups, dtype=bool)
            chosen[np.random.default_rng(int(self.random_state) + m).choice(n_groups, size=n_take, replace=False)] = (
                True
            )
            in_bag[:, m] = chosen[inverse]
        # Each member starts from the mean of its own rows (the booster has one base score for all outputs, so
        # the offsets are applied outside it): no member's prediction depends on a label outside its rows.
        weight = in_bag.astype(np.float64)
        self.y_offsets_ = (weight * y[:, None]).sum(axis=0) / weight.sum(axis=0)
        target = y[:, None] - self.y_offsets_[None, :]

        def squared_error_in_bag(pred: np.ndarray, _dtrain) -> tuple[np.ndarray, np.ndarray]:
            pred = pred.reshape(n, k)
            return (pred - target) * weight, weight

        params = {
            "objective": "reg:squarederror",
            "tree_method": "hist",
            "multi_strategy": "one_output_per_tree",
            "max_depth": int(self.max_depth),
            "eta": float(self.learning_rate),
            "colsample_bytree": float(self.colsample_bytree),
            "min_child_weight": float(self.min_child_weight),
            "lambda": float(self.reg_lambda),
            "base_score": 0.0,
            "nthread": int(self.nthread),
            "seed": int(self.random_state),
            "verbosity": 0,
        }
        dtrain = xgb.DMatrix(X, label=target, nthread=int(self.nthread))
        self.booster_ = xgb.train(params, dtrain, num_boost_round=int(self.n_estimators), obj=squared_error_in_bag)
        self.n_features_in_ = X.shape[1]
        self.std_scale_, self.noise_std_ = 1.0, 0.0
        if self.calibrate:
            self.std_scale_, self.noise_std_ = self._cross_fitted_calibration(X, y, inverse, n_groups)
        return self

    def _cross_fitted_calibration(
        self, X: np.ndarray, y: np.ndarray, inverse: np.ndarray, n_groups: int
    ) -> tuple[float, float]:
        folds = max(2, int(self.calibration_folds))
        if n_groups < 2 * folds:  # too few groups to hold any out: a conservative constant std
            return 0.0, float(np.std(y)) or 1e-12
        part_of_group = np.random.default_rng([int(self.random_state), 1]).permutation(n_groups) % folds
        part = part_of_group[inverse]
        residuals, spreads = [], []
        for f in range(folds):
            held = part == f
            sub = self.get_params()
            sub["calibrate"] = False
            model = type(self)(**sub).fit(X[~held], y[~held], groups=inverse[~held])
            preds = model.member_predictions(X[held])
            residuals.append(y[held] - preds.mean(axis=1))
            spreads.append(preds.std(axis=1, ddof=1))
        return _fit_std_calibration(np.concatenate(residuals), np.concatenate(spreads))

    def member_predictions(self, X: np.ndarray) -> np.ndarray:
        """Every member's prediction, shape (n, n_members); ``X`` a float64 array of shape (n, n_features)."""
        out = self.booster_.inplace_predict(X)
        return out.reshape(len(X), int(self.n_members)).astype(np.float64) + self.y_offsets_

    def predict(self, X, return_std: bool = False):
        """Mean over members, shape (n,); with ``return_std`` also the calibrated std, shape (n,)."""
        if not hasattr(self, "booster_"):
            raise NotFittedError("XGBEnsemble is not fitted yet; call fit(X, y) first")
        if not (isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype == np.float64):
            X = check_array(X, dtype=np.float64)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features; the ensemble was fitted on {self.n_features_in_}")
        preds = self.member_predictions(X)
        mean = preds.mean(axis=1)
        if not return_std:
            return mean
        spread = preds.std(axis=1, ddof=1)
        return mean, np.sqrt((self.std_scale_ * spread) ** 2 + self.noise_std_**2)

    def set_nthread(self, nthread: int) -> "XGBEnsemble":
        """Change the prediction threads of a fitted ensemble (and the ``nthread`` parameter)."""
        self.nthread = nthread
        if hasattr(self, "booster_"):
            self.booster_.set_param({"nthread": int(nthread)})
        return self
