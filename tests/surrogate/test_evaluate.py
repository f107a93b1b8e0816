"""Metrics, splits and the noise floor, on small cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qra_bench.surrogate.evaluate import (
    Z90,
    coverage,
    gaussian_nll,
    group_kfold,
    high_memory_split,
    noise_floor,
    regression_metrics,
    tau_noise_ceiling,
    top_decile_split,
)


def test_coverage_counts_observations_inside_the_90_percent_interval():
    mean, std = np.zeros(4), np.ones(4)
    y = np.array([0.0, 1.6, 1.7, -1.0])  # 1.6 < 1.645 < 1.7
    assert coverage(y, mean, std) == 0.75
    assert coverage(y, mean, 2 * std) == 1.0
    assert math.isnan(coverage(np.zeros(0), np.zeros(0), np.zeros(0)))


def test_coverage_of_a_true_gaussian_is_ninety_percent():
    rng = np.random.default_rng(0)
    std = rng.uniform(0.5, 2.0, 200_000)
    y = rng.normal(0.0, std)
    assert coverage(y, np.zeros_like(y), std) == pytest.approx(0.90, abs=0.003)
    assert Z90 == pytest.approx(1.6448536, abs=1e-7)


def test_gaussian_nll_by_hand():
    assert gaussian_nll(np.array([1.0]), np.array([0.0]), np.array([2.0])) == pytest.approx(
        0.5 * math.log(2 * math.pi * 4.0) + 1.0 / 8.0
    )


def test_metrics_of_a_perfect_ranking_and_of_the_top_recall():
    y = np.arange(20, dtype=float)
    m = regression_metrics(y, y + 0.5, np.ones(20), groups=np.repeat(np.arange(10), 2))
    assert m["spearman"] == 1.0 and m["kendall_tau"] == 1.0 and m["rmse"] == 0.5
    assert m["top10_recall"] == 1.0 and m["n"] == 20 and m["n_configs"] == 10
    assert m["spearman_config_mean"] == pytest.approx(1.0)
    assert m["r2"] == pytest.approx(1 - 0.25 * 20 / np.sum((y - y.mean()) ** 2))
    # Lower is better (a loss): the top 10 % are the two smallest; a reversed prediction finds none of them.
    m = regression_metrics(y, -y, np.ones(20), higher_is_better=False)
    assert m["top10_recall"] == 0.0 and m["spearman"] == -1.0


def test_undefined_metrics_are_nan():
    m = regression_metrics(np.ones(5), np.arange(5.0), np.ones(5))
    assert math.isnan(m["spearman"]) and math.isnan(m["r2"])


def test_noise_floor_is_the_pooled_std_of_repeats():
    # config a at full fidelity: seeds 1, 3 (var 2); config b: 10, 12, 14 (var 4); c has one seed (ignored).
    y = np.array([1.0, 3.0, 10.0, 12.0, 14.0, 7.0, 0.0, 1.0])
    groups = np.array(["a", "a", "b", "b", "b", "c", "a", "a"])
    frac = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5])
    floor = noise_floor(y, groups, frac)
    assert floor["full"]["std"] == pytest.approx(math.sqrt((2.0 + 8.0) / (1 + 2)))
    assert floor["full"]["n_groups"] == 2 and floor["full"]["n_rows"] == 5
    assert floor["per_fidelity"]["0.5"] == pytest.approx(math.sqrt(0.5))
    assert math.isnan(noise_floor(y[:1], groups[:1], frac[:1])["full"]["std"])


def test_splits_keep_a_configuration_on_one_side():
    groups = np.repeat([f"c{i}" for i in range(23)], 4)
    folds = group_kfold(groups, 5, seed=1)
    assert len(folds) == 5
    assert sorted(np.concatenate([test for _, test in folds]).tolist()) == list(range(len(groups)))
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
    assert [t.tolist() for _, t in folds] == [t.tolist() for _, t in group_kfold(groups, 5, seed=1)]
    assert [t.tolist() for _, t in folds] != [t.tolist() for _, t in group_kfold(groups, 5, seed=2)]


def test_high_memory_and_top_decile_hold_out_the_right_configurations():
    groups = np.repeat([f"c{i:02d}" for i in range(20)], 2)
    memory = np.repeat(np.arange(20.0), 2)
    [(train, test)] = high_memory_split(groups, memory)
    assert set(groups[test]) == {"c16", "c17", "c18", "c19"}
    assert not set(groups[train]) & set(groups[test])
    # Target: the low-fidelity row says nothing; each configuration's best fidelity decides.
    y = np.repeat(np.arange(20.0), 2) * np.tile([0.0, 1.0], 20)
    frac = np.tile([0.5, 1.0], 20)
    [(_, test)] = top_decile_split(groups, y, frac, higher_is_better=True)
    assert set(groups[test]) == {"c18", "c19"}
    [(_, test)] = top_decile_split(groups, y, frac, higher_is_better=False)
    assert set(groups[test]) == {"c00", "c01"}


def test_tau_noise_ceiling_is_near_one_for_a_wide_spread_and_near_zero_when_noise_dominates():
    rng = np.random.default_rng(3)
    wide = rng.normal(0.0, 1.0, 60)
    assert tau_noise_ceiling(wide, noise_std=0.01) > 0.95
    # Gaussian means and noise: tau = (2 / pi) asin(corr), corr = sqrt(share of the variance that is not noise)
    var = np.var(wide, ddof=1)
    expected = 2 / math.pi * math.asin(math.sqrt((var - 0.81) / var))
    assert tau_noise_ceiling(wide, noise_std=0.9) == pytest.approx(expected, abs=0.05)
    # spread no larger than the noise: nothing to rank
    assert tau_noise_ceiling(rng.normal(0.0, 0.1, 60), noise_std=0.2) == 0.0
    assert np.isnan(tau_noise_ceiling(wide[:2], noise_std=0.1))
    assert np.isnan(tau_noise_ceiling(wide, noise_std=float("nan")))
