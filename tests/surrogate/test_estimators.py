"""The two surrogate estimators: scikit-learn's contract, learning a known function, honest uncertainty."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from conftest import standin_rows
from qra_bench.arch import load_arch
from qra_bench.memory import MemoryModel
from qra_bench.space import QRConfig
from qra_bench.surrogate import FeatureEncoder, GPSurrogate, XGBEnsemble
from qra_bench.surrogate.gp import matern52_neg_log_marginal_likelihood

ESTIMATORS = [
    pytest.param(lambda: XGBEnsemble(), id="xgb"),
    pytest.param(lambda: GPSurrogate(n_restarts_optimizer=0), id="gp"),
]


@pytest.fixture(scope="module")
def known_function():
    """Stand-in targets (see conftest) of 300 configurations, one seed, full fidelity: 240 train, 60 test."""
    rows = standin_rows(n_configs=300, seeds=(0,), fractions=(1.0,), design_seed=7)
    memory = MemoryModel(load_arch("tiny"))
    enc = FeatureEncoder(memory.space, memory, include_fidelity=False)
    X = enc.transform_configs([QRConfig(r.bits, r.ranks) for r in rows])
    y = np.array([r.accuracy for r in rows])
    return X[:240], y[:240], X[240:], y[240:]


@pytest.mark.parametrize("make", ESTIMATORS)
def test_estimator_contract_clone_fit_returns_self_and_not_fitted_raises(make):
    est = make()
    params = est.get_params()
    twin = clone(est)
    assert twin.get_params() == params and twin is not est
    with pytest.raises(NotFittedError):
        est.predict(np.zeros((2, 3)))
    X = np.random.default_rng(0).random((30, 3))
    assert est.fit(X, X.sum(axis=1)) is est
    assert est.get_params() == params  # fit never changes the constructor arguments
    assert est.n_features_in_ == 3
    with pytest.raises(ValueError, match="features"):
        est.predict(np.zeros((2, 4)))


@pytest.mark.parametrize("make", ESTIMATORS)
def test_learns_a_known_function_with_positive_std(make, known_function):
    X, y, X_test, y_test = known_function
    mean, std = make().fit(X, y).predict(X_test, return_std=True)
    assert spearmanr(mean, y_test)[0] > 0.9
    assert mean.shape == std.shape == y_test.shape
    assert np.all(std > 0) and np.all(np.isfinite(std))


def test_xgb_ensemble_is_deterministic_and_members_differ():
    X = np.random.default_rng(1).random((80, 4))
    y = np.sin(3 * X[:, 0]) + X[:, 1]
    a = XGBEnsemble(n_estimators=20, random_state=3).fit(X, y)
    b = XGBEnsemble(n_estimators=20, random_state=3).fit(X, y)
    np.testing.assert_array_equal(a.member_predictions(X), b.member_predictions(X))
    members = a.member_predictions(X)
    assert members.shape == (80, 5)
    assert np.all(np.ptp(members, axis=1) > 0)  # row subsamples differ, so members disagree
    c = XGBEnsemble(n_estimators=20, random_state=4).fit(X, y)
    assert not np.array_equal(a.predict(X), c.predict(X))


def test_xgb_members_never_see_rows_outside_their_subsample():
    # Member m's trees get zero gradient and hessian off its rows: a label change there must not move it.
    rng = np.random.default_rng(2)
    X, y = rng.random((60, 3)), rng.random(60)
    groups = np.repeat(np.arange(20), 3)
    base = XGBEnsemble(n_members=2, subsample=0.5, n_estimators=10, calibrate=False).fit(X, y, groups=groups)
    in_bag0 = np.zeros(20, bool)
    in_bag0[np.random.default_rng(0).choice(20, size=10, replace=False)] = True
    y2 = y.copy()
    y2[~in_bag0[groups]] += 5.0
    moved = XGBEnsemble(n_members=2, subsample=0.5, n_estimators=10, calibrate=False).fit(X, y2, groups=groups)
    d0 = moved.member_predictions(X)[:, 0] - base.member_predictions(X)[:, 0]
    np.testing.assert_allclose(d0, 0.0, atol=1e-5)
    d1 = moved.member_predictions(X)[:, 1] - base.member_predictions(X)[:, 1]
    assert np.abs(d1).max() > 0.1


def test_xgb_std_calibration_adds_the_noise_it_sees():
    rng = np.random.default_rng(5)
    X = rng.random((400, 2))
    y = X[:, 0] + rng.normal(0, 0.1, 400)  # the noise no model can explain
    est = XGBEnsemble(n_estimators=40).fit(X, y)
    assert 0.05 < est.noise_std_ < 0.15
    X_new = rng.random((2000, 2))
    mean, std = est.predict(X_new, return_std=True)
    y_new = X_new[:, 0] + rng.normal(0, 0.1, 2000)
    assert 0.8 <= np.mean(np.abs(y_new - mean) <= 1.645 * std) <= 0.97


def test_gp_fast_likelihood_matches_scikit_learn():
    rng = np.random.default_rng(6)
    X, y = rng.random((30, 4)), rng.standard_normal(30)
    kernel = ConstantKernel() * Matern(np.ones(4), nu=2.5) + WhiteKernel(0.1)
    gp = GaussianProcessRegressor(kernel, optimizer=None).fit(X, y)
    for _ in range(3):
        theta = rng.normal(0, 1, 6)
        lml, grad = gp.log_marginal_likelihood(theta, eval_gradient=True)
        ours, our_grad = matern52_neg_log_marginal_likelihood(theta, X, y)
        assert ours == pytest.approx(-lml, rel=1e-10)
        np.testing.assert_allclose(our_grad, -grad, rtol=1e-7, atol=1e-9)


def test_gp_std_includes_the_white_noise():
    rng = np.random.default_rng(8)
    X = rng.random((60, 2))
    y = X[:, 0] + rng.normal(0, 0.2, 60)
    gp = GPSurrogate(n_restarts_optimizer=0).fit(X, y)
    _, std = gp.predict(X, return_std=True)  # at training points the latent std is near 0; noise remains
    assert np.all(std > 0.1)
    assert "Matern" in str(gp.kernel_) and "WhiteKernel" in str(gp.kernel_)


def test_gp_fits_a_seeded_subset_beyond_max_train_rows():
    rng = np.random.default_rng(9)
    X = rng.random((80, 2))
    y = X[:, 0] + rng.normal(0, 0.05, 80)
    capped = GPSurrogate(n_restarts_optimizer=0, max_train_rows=50).fit(X, y)
    again = GPSurrogate(n_restarts_optimizer=0, max_train_rows=50).fit(X, y)
    full = GPSurrogate(n_restarts_optimizer=0, max_train_rows=None).fit(X, y)
    assert len(capped.train_rows_) == 50 and len(np.unique(capped.train_rows_)) == 50
    np.testing.assert_array_equal(capped.train_rows_, again.train_rows_)
    assert len(full.train_rows_) == 80
    # the subset still learns the trend it was drawn from
    assert np.corrcoef(capped.predict(X), X[:, 0])[0, 1] > 0.95
