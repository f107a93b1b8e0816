"""How good a surrogate is: metrics, named splits, a learning curve, and the seed-noise floor.

Splits never separate the rows of one configuration (its seeds and fidelities): a surrogate that has seen
seed 0 of a configuration would otherwise "predict" seed 1 from memory. Three named splits:

- ``random_5fold``: configurations shuffled (seeded) into 5 folds; out-of-fold predictions of all folds are
  pooled and scored once.
- ``high_memory``: train on the configurations below the 80th percentile of predicted memory, test on the
  top 20 % (extrapolation to larger configurations).
- ``top_decile``: hold out the best 10 % of configurations by their mean target at their highest fidelity
  (the region a search cares about, never seen in training).

Metrics are computed on the held-out rows at full fidelity (``fidelity_frac == 1``), one row per
(configuration, seed): the question a surrogate answers is the fine-tuned result of a full run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

import numpy as np
from scipy import stats

__all__ = [
    "Z90",
    "SurrogateData",
    "coverage",
    "gaussian_nll",
    "group_kfold",
    "high_memory_split",
    "learning_curve",
    "noise_floor",
    "regression_metrics",
    "run_split",
    "top_decile_split",
]

#: Half-width of a central 90 % Gaussian interval, in standard deviations.
Z90 = 1.6448536269514722
LEARNING_CURVE_FRACTIONS: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
N_FOLDS = 5


@dataclass(frozen=True)
class SurrogateData:
    """Training rows of a surrogate, aligned arrays of length ``n``.

    ``groups`` names each row's configuration (its hash); ``memory`` is its predicted memory (bytes);
    ``evaluate`` marks the rows metrics are computed on (full fidelity).
    """

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    memory: np.ndarray
    fidelity_frac: np.ndarray
    seed: np.ndarray
    evaluate: np.ndarray
    higher_is_better: bool = True

    @property
    def n(self) -> int:
        return len(self.y)


# ---------------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------------
def coverage(y: np.ndarray, mean: np.ndarray, std: np.ndarray, z: float = Z90) -> float:
    """Fraction of ``y`` inside ``mean +- z * std`` (90 % intervals by default)."""
    if len(y) == 0:
        return math.nan
    return float(np.mean(np.abs(np.asarray(y) - mean) <= z * np.asarray(std)))


def gaussian_nll(y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> float:
    """Mean negative log-likelihood of ``y`` under ``N(mean, std**2)`` (nats per observation)."""
    if len(y) == 0:
        return math.nan
    var = np.maximum(np.asarray(std, dtype=float), 1e-12) ** 2
    return float(np.mean(0.5 * np.log(2 * np.pi * var) + (np.asarray(y) - mean) ** 2 / (2 * var)))


def _top_recall(y: np.ndarray, mean: np.ndarray, higher_is_better: bool, frac: float) -> float:
    k = max(1, int(round(frac * len(y))))
    sign = -1.0 if higher_is_better else 1.0
    true_top = set(np.argsort(sign * y, kind="stable")[:k].tolist())
    pred_top = set(np.argsort(sign * mean, kind="stable")[:k].tolist())
    return len(true_top & pred_top) / k


def _rank_corr(fn, a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(fn(a, b)[0])


def regression_metrics(
    y: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    groups: Optional[np.ndarray] = None,
    higher_is_better: bool = True,
    top_frac: float = 0.1,
) -> dict[str, float]:
    """R², Spearman, Kendall tau, RMSE, top-10 % recall, Gaussian NLL and 90 % coverage of predictions.

    With ``groups`` the two rank correlations are also computed on configuration means (the target and the
    prediction averaged over each configuration's seeds), which removes seed noise from the ranking.
    Undefined values (fewer than 3 rows, a constant column) are NaN.
    """
    y, mean, std = (np.asarray(a, dtype=float) for a in (y, mean, std))
    n = len(y)
    resid = y - mean
    ss_tot = float(np.sum((y - y.mean()) ** 2)) if n else 0.0
    out = {
        "n": n,
        "r2": 1.0 - float(np.sum(resid**2)) / ss_tot if n >= 2 and ss_tot > 0 else math.nan,
        "spearman": _rank_corr(stats.spearmanr, y, mean),
        "kendall_tau": _rank_corr(stats.kendalltau, y, mean),
        "rmse": float(np.sqrt(np.mean(resid**2))) if n else math.nan,
        "top10_recall": _top_recall(y, mean, higher_is_better, top_frac) if n else math.nan,
        "nll": gaussian_nll(y, mean, std),
        "coverage90": coverage(y, mean, std),
        "mean_std": float(np.mean(std)) if n else math.nan,
    }
    if groups is not None:
        groups = np.asarray(groups)
        _, inverse = np.unique(groups, return_inverse=True)
        counts = np.bincount(inverse)
        y_g = np.bincount(inverse, weights=y) / counts
        m_g = np.bincount(inverse, weights=mean) / counts
        out["n_configs"] = int(len(counts))
        out["spearman_config_mean"] = _rank_corr(stats.spearmanr, y_g, m_g)
        out["kendall_tau_config_mean"] = _rank_corr(stats.kendalltau, y_g, m_g)
    return out


def tau_noise_ceiling(y: np.ndarray, noise_std: float, n_sims: int = 200, seed: int = 0) -> float:
    """Kendall tau that even a perfect predictor (one knowing each configuration's true mean) would reach
    against held-out observations ``y`` carrying seed noise of std ``noise_std``.

    The true means are unknown, so they are stood in for by ``y`` shrunk toward its mean to the variance that
    is not noise, ``var(y) - noise_std**2`` (keeping the shape of their spread); the ceiling is the average
    tau between those means and ``n_sims`` noisy draws of them. Near 0 when the split's spread is mostly seed
    noise (a top decile whose configurations differ by less than the noise cannot be ranked by any model).
    NaN when undefined (fewer than 3 rows, unknown noise).
    """
    y = np.asarray(y, dtype=float)
    if len(y) < 3 or not np.isfinite(noise_std) or noise_std <= 0:
        return math.nan
    var = float(np.var(y, ddof=1))
    if var <= noise_std**2:
        return 0.0
    mu = y.mean() + (y - y.mean()) * math.sqrt((var - noise_std**2) / var)
    rng = np.random.default_rng(seed)
    return float(np.mean([stats.kendalltau(mu, mu + rng.normal(0.0, noise_std, len(mu)))[0] for _ in range(n_sims)]))


def noise_floor(y: np.ndarray, groups: np.ndarray, fidelity_frac: np.ndarray) -> dict:
    """Seed noise: the pooled standard deviation of repeats of one configuration at one fidelity.

    ``sqrt(sum over (config, fidelity) groups of squared deviations from the group mean / sum (n_g - 1))``,
    over groups with at least two seeds. Returns ``{"full": {"std", "n_groups", "n_rows"}, "per_fidelity":
    {fraction: std}}``; ``std`` is NaN when no configuration was repeated.
    """
    y = np.asarray(y, dtype=float)
    keys = np.array([f"{g}|{f:.6f}" for g, f in zip(groups, fidelity_frac)])
    _, inverse = np.unique(keys, return_inverse=True)
    counts = np.bincount(inverse)
    means = np.bincount(inverse, weights=y) / counts
    sq = (y - means[inverse]) ** 2
    repeated = counts[inverse] >= 2

    def pooled(mask: np.ndarray) -> tuple[float, int, int]:
        rows = mask & repeated
        n_groups = len(np.unique(inverse[rows]))
        dof = int(rows.sum()) - n_groups
        std = float(np.sqrt(sq[rows].sum() / dof)) if dof > 0 else math.nan
        return std, n_groups, int(rows.sum())

    fracs = np.asarray(fidelity_frac, dtype=float)
    std, n_groups, n_rows = pooled(np.isclose(fracs, 1.0))
    per = {f"{f:g}": pooled(np.isclose(fracs, f))[0] for f in sorted(set(fracs.round(6).tolist()))}
    return {"full": {"std": std, "n_groups": n_groups, "n_rows": n_rows}, "per_fidelity": per}


# ---------------------------------------------------------------------------------------------------------
# Splits: lists of (train row indices, test row indices)
# ---------------------------------------------------------------------------------------------------------
Split = list[tuple[np.ndarray, np.ndarray]]


def group_kfold(groups: np.ndarray, k: int = N_FOLDS, seed: int = 0) -> Split:
    """``k`` folds of whole configurations, shuffled with ``seed``; fewer folds if there are fewer configs."""
    uniq = np.unique(groups)
    order = np.random.default_rng(seed).permutation(len(uniq))
    k = max(2, min(k, len(uniq)))
    fold_of = dict(zip(uniq[order].tolist(), (np.arange(len(uniq)) % k).tolist()))
    fold = np.array([fold_of[g] for g in groups])
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(k)]


def high_memory_split(groups: np.ndarray, memory: np.ndarray, frac: float = 0.2) -> Split:
    """Test on the configurations in the top ``frac`` of predicted memory, train on the rest."""
    uniq, first = np.unique(groups, return_index=True)
    mem = np.asarray(memory, dtype=float)[first]
    n_test = max(1, int(round(frac * len(uniq))))
    test_groups = set(uniq[np.argsort(-mem, kind="stable")[:n_test]].tolist())
    test = np.array([g in test_groups for g in groups])
    return [(np.flatnonzero(~test), np.flatnonzero(test))]


def top_decile_split(
    groups: np.ndarray, y: np.ndarray, fidelity_frac: np.ndarray, higher_is_better: bool, frac: float = 0.1
) -> Split:
    """Test on the best ``frac`` of configurations (mean target at each one's highest fidelity)."""
    groups = np.asarray(groups)
    fracs = np.asarray(fidelity_frac, dtype=float)
    score: dict = {}
    for g in np.unique(groups):
        rows = groups == g
        top = rows & (fracs == fracs[rows].max())
        score[g] = float(np.mean(np.asarray(y)[top]))
    names = np.array(sorted(score))
    values = np.array([score[g] for g in names])
    n_test = max(1, int(round(frac * len(names))))
    order = np.argsort(-values if higher_is_better else values, kind="stable")
    test_groups = set(names[order[:n_test]].tolist())
    test = np.array([g in test_groups for g in groups])
    return [(np.flatnonzero(~test), np.flatnonzero(test))]


# ---------------------------------------------------------------------------------------------------------
# Fitting on splits
# ---------------------------------------------------------------------------------------------------------
class Estimator(Protocol):
    """A surrogate estimator (:class:`~qra_bench.surrogate.xgb.XGBEnsemble`,
    :class:`~qra_bench.surrogate.gp.GPSurrogate`): ``fit`` returns the fitted estimator, and
    ``predict(X, return_std=True)`` returns ``(mean, std)``."""

    def fit(self, X: Any, y: Any, groups: Any = None) -> Any: ...

    def predict(self, X: Any, return_std: bool = False) -> Any: ...


Factory = Callable[[], Estimator]  # an unfitted estimator


@dataclass(frozen=True)
class SplitResult:
    """Metrics of one split and its held-out predictions (row indices into the data, mean, std)."""

    metrics: dict
    rows: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    n_train_rows: float


def run_split(
    make: Factory,
    data: SurrogateData,
    split: Split,
    subsample: Optional[Callable[[np.ndarray, int], np.ndarray]] = None,
) -> SplitResult:
    """Fit on each train part, predict its test part, pool the evaluated test rows and score them once.

    ``subsample(train_rows, fold)`` may shrink each train part (the learning curve).
    """
    rows, means, stds, n_train = [], [], [], []
    for fold, (train, test) in enumerate(split):
        if subsample is not None:
            train = subsample(train, fold)
        test = test[data.evaluate[test]]
        if len(train) < 2 or len(test) == 0:
            continue
        model = make()
        model.fit(data.X[train], data.y[train], groups=data.groups[train])
        mean, std = model.predict(data.X[test], return_std=True)
        rows.append(test)
        means.append(mean)
        stds.append(std)
        n_train.append(len(train))
    if not rows:
        empty = np.zeros(0)
        return SplitResult(
            regression_metrics(
                empty, empty, empty, groups=np.zeros(0, dtype=str), higher_is_better=data.higher_is_better
            ),
            np.zeros(0, dtype=int),
            empty,
            empty,
            0.0,
        )
    idx, mean, std = np.concatenate(rows), np.concatenate(means), np.concatenate(stds)
    metrics = regression_metrics(
        data.y[idx], mean, std, groups=data.groups[idx], higher_is_better=data.higher_is_better
    )
    metrics["n_train_rows"] = float(np.mean(n_train))
    return SplitResult(metrics, idx, mean, std, float(np.mean(n_train)))


def _group_subsampler(data: SurrogateData, fraction: float, seed: int) -> Callable[[np.ndarray, int], np.ndarray]:
    """Keep a seeded random ``fraction`` of each train part's configurations (at least two)."""

    def take(train: np.ndarray, fold: int) -> np.ndarray:
        uniq = np.unique(data.groups[train])
        keep_n = min(len(uniq), max(2, int(math.ceil(fraction * len(uniq)))))
        rng = np.random.default_rng([seed, fold, int(round(fraction * 1000))])
        keep = set(rng.choice(uniq, size=keep_n, replace=False).tolist())
        return train[np.fromiter((g in keep for g in data.groups[train]), dtype=bool, count=len(train))]

    return take


def learning_curve(
    make: Factory,
    data: SurrogateData,
    split: Split,
    seed: int = 0,
    fractions: tuple[float, ...] = LEARNING_CURVE_FRACTIONS,
    full: Optional[SplitResult] = None,
) -> list[dict]:
    """The random-split metrics with each train part cut to ``fractions`` of its configurations.

    ``full`` (the result at fraction 1, already computed) is reused instead of refitting.
    """
    curve = []
    for fraction in fractions:
        if fraction >= 1.0 and full is not None:
            result = full
        else:
            result = run_split(make, data, split, subsample=_group_subsampler(data, fraction, seed))
        curve.append({"fraction": fraction, **result.metrics})
    return curve
