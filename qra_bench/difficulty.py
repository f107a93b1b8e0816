"""The difficulty card of a scenario: how hard its problem is, computed from its results table alone.

Everything is read on full-fidelity ok rows of the scenario's metric, averaged per configuration over seeds,
and judged against the pooled seed noise (the standard deviation of repeats of one configuration):

- the best *uniform* configuration that fits the budget (every block the same bits and rank) and the best *mixed*
  one, each as mean +- standard error over >= ``min_seeds`` seeds, and the mixed advantage in noise units;
- the same advantage as a curve over a range of budgets (so a reader sees whether it is one lucky point of the
  uniform grid);
- the fraction of fitting configurations within the target tolerance (``tolerance_noise`` x noise) of the best,
  and random search's expected evaluations to target from it (drawing fitting configurations without
  replacement: ``(N + 1) / (K + 1)`` for ``K`` hits among ``N``). A table's configurations are not a uniform
  sample: designs aimed at the best region and the trials of search runs crowd near the optimum and inflate the
  fraction. So when a *sample* is given (the configurations of a design drawn without looking at any
  measurement) the estimate is taken on the fitting configurations of that sample alone; the table-wide count is
  still reported;
- a surrogate's Kendall tau on the fitting configurations (out-of-fold predictions saved with the artifact) and
  on their top decile, beside the tau that the seed noise allows at all;
- the collection bar: full-fidelity trials, fitting configurations in the top quarter of the memory range the
  budget admits, uniform anchors and best configurations measured at >= 3 seeds.

Pure pandas/numpy/scipy: no torch, so a card is computed wherever a table can be read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Collection, Optional, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from qra_bench.surrogate.evaluate import noise_floor, tau_noise_ceiling

__all__ = ["Bar", "ConfigStat", "DifficultyCard", "compute_card", "config_means", "best_fitting_uniform"]

#: Higher is better for these metrics; every other metric (losses) is lower-is-better.
HIGHER_IS_BETTER = {"accuracy"}


@dataclass(frozen=True)
class ConfigStat:
    """One configuration's measured mean over seeds (metric units), its standard error and memory (bytes)."""

    config_hash: str
    bits: tuple[int, ...]
    ranks: tuple[int, ...]
    mean: float
    se: float
    n_seeds: int
    memory_bytes: int

    @property
    def uniform(self) -> bool:
        return len(set(self.bits)) == 1 and len(set(self.ranks)) == 1

    @property
    def label(self) -> str:
        if self.uniform:
            return f"uniform {self.bits[0]}-bit r{self.ranks[0]}"
        return f"bits {list(self.bits)} ranks {list(self.ranks)}"


@dataclass(frozen=True)
class Bar:
    """The collection bar a headline table must meet, and what the table has."""

    min_full_trials: int = 1000
    min_band_configs: int = 400
    n_best: int = 20
    min_seeds: int = 3
    full_trials: int = 0
    fidelities_per_trial: int = 0
    band_configs: int = 0
    anchors_at_min_seeds: int = 0
    n_anchors: int = 0
    best_at_min_seeds: int = 0

    @property
    def met(self) -> bool:
        return (
            self.full_trials >= self.min_full_trials
            and self.fidelities_per_trial >= 3
            and self.band_configs >= self.min_band_configs
            and self.anchors_at_min_seeds == self.n_anchors
            and self.best_at_min_seeds >= self.n_best
        )


@dataclass
class DifficultyCard:
    """The card's figures (metric units unless named otherwise); see the module docstring."""

    metric: str
    higher_is_better: bool
    budget_name: str
    budget_bytes: int
    noise_std: float
    noise_configs: int
    n_fitting: int
    best_uniform: Optional[ConfigStat]
    best_mixed: Optional[ConfigStat]
    advantage: float
    advantage_noise: float
    advantage_se: float
    tolerance: float
    target: float
    n_within: int
    frac_within: float
    random_evals_to_target: float
    sample_name: str = ""
    sample_fitting: int = 0
    sample_within: int = 0
    curve: list[dict] = field(default_factory=list)
    surrogate_tau: dict = field(default_factory=dict)
    bar: Bar = field(default_factory=Bar)


def config_means(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per configuration: bits, ranks, mean, se, n_seeds, memory (bytes) of ``metric`` on full-fidelity ok rows."""
    frac = frame["fidelity_frac"].astype(float)
    full = frame[np.isclose(frac, 1.0) & np.isfinite(frame[metric].astype(float))]
    if full.empty:
        return pd.DataFrame(columns=["config_hash", "bits", "ranks", "mean", "se", "n_seeds", "memory"])
    g = full.groupby("config_hash", sort=True)
    out = pd.DataFrame(
        {
            "bits": g["bits"].first().map(lambda b: tuple(int(x) for x in b)),
            "ranks": g["ranks"].first().map(lambda r: tuple(int(x) for x in r)),
            "mean": g[metric].mean().astype(float),
            "std": g[metric].std(ddof=1).astype(float),
            "n_seeds": g["seed"].nunique().astype(int),
            "memory": g["mem_predicted_bytes"].first().astype("int64"),
        }
    ).reset_index()
    out["se"] = out["std"] / np.sqrt(out["n_seeds"])
    out["uniform"] = [len(set(b)) == 1 and len(set(r)) == 1 for b, r in zip(out["bits"], out["ranks"])]
    return out


def _stat(row: pd.Series, noise: float) -> ConfigStat:
    n = int(row["n_seeds"])
    # With one seed the sample std is undefined: the pooled noise stands in for it.
    se = float(row["se"]) if n >= 2 and math.isfinite(row["se"]) else noise / math.sqrt(max(n, 1))
    return ConfigStat(
        str(row["config_hash"]), tuple(row["bits"]), tuple(row["ranks"]), float(row["mean"]), se, n, int(row["memory"])
    )


def _best(means: pd.DataFrame, higher: bool) -> Optional[pd.Series]:
    if means.empty:
        return None
    order = means.sort_values(["mean", "config_hash"], ascending=[not higher, True], kind="stable")
    return order.iloc[0]


def best_fitting_uniform(
    means: pd.DataFrame, budget_bytes: int, higher: bool, min_seeds: int = 1, noise: float = math.nan
) -> Optional[ConfigStat]:
    """The uniform configuration (any bits and rank of the ladders) with the best measured mean that fits
    ``budget_bytes``, among those measured at >= ``min_seeds`` seeds; None when none fits."""
    sel = means[means["uniform"] & (means["memory"] <= budget_bytes) & (means["n_seeds"] >= min_seeds)]
    row = _best(sel, higher)
    return None if row is None else _stat(row, noise)


def _advantage(uni: Optional[ConfigStat], mix: Optional[ConfigStat], higher: bool) -> float:
    if uni is None or mix is None:
        return math.nan
    return (mix.mean - uni.mean) if higher else (uni.mean - mix.mean)


def _curve(means: pd.DataFrame, budgets: Sequence[tuple[str, int]], higher: bool, noise: float) -> list[dict]:
    """Per budget: best uniform and best mixed by mean over every fitting configuration (any seed count)."""
    out = []
    for name, b in budgets:
        fit = means[means["memory"] <= b]
        u, m = _best(fit[fit["uniform"]], higher), _best(fit[~fit["uniform"]], higher)
        us = None if u is None else _stat(u, noise)
        ms = None if m is None else _stat(m, noise)
        adv = _advantage(us, ms, higher)
        out.append(
            {
                "budget": name,
                "budget_bytes": int(b),
                "n_fitting": int(len(fit)),
                "best_uniform": None if us is None else us.label,
                "best_uniform_mean": None if us is None else us.mean,
                "best_mixed_mean": None if ms is None else ms.mean,
                "best_mixed_seeds": None if ms is None else ms.n_seeds,
                "advantage": adv,
                "advantage_noise": adv / noise if noise > 0 else math.nan,
            }
        )
    return out


def surrogate_tau(predictions: pd.DataFrame, fitting: pd.DataFrame, higher: bool, noise: float) -> dict:
    """Kendall tau of a surrogate's out-of-fold predictions on the fitting configurations and on their top decile.

    ``predictions`` has ``config_hash``, ``fidelity_frac``, ``observed`` and ``mean`` (the artifact's
    ``predictions.csv``); both are averaged per configuration at full fidelity. The ceiling is the tau a predictor
    knowing every configuration's true mean would reach against these noisy means.
    """
    p = predictions[np.isclose(predictions["fidelity_frac"].astype(float), 1.0)]
    p = p[p["config_hash"].isin(set(fitting["config_hash"]))]
    if p.empty:
        return {"n_configs": 0}
    g = p.groupby("config_hash").agg(observed=("observed", "mean"), predicted=("mean", "mean"), n=("observed", "size"))
    out: dict = {"n_configs": int(len(g))}
    top_n = max(3, int(round(0.1 * len(g))))
    top = g.sort_values("observed", ascending=not higher).iloc[:top_n]
    for key, part in (("all", g), ("top_decile", top)):
        tau = float(stats.kendalltau(part["observed"], part["predicted"])[0]) if len(part) >= 3 else math.nan
        ceiling = tau_noise_ceiling(part["observed"].to_numpy(float), noise / math.sqrt(float(part["n"].mean())))
        out[key] = {"n": int(len(part)), "tau": tau, "ceiling": ceiling}
    return out


def compute_card(
    frame: pd.DataFrame,
    metric: str,
    budget_name: str,
    budget_bytes: int,
    smallest_bytes: int,
    sweep_budgets: Sequence[tuple[str, int]] = (),
    predictions: Optional[dict[str, pd.DataFrame]] = None,
    n_uniform_anchors: int = 15,
    tolerance_noise: float = 2.0,
    min_seeds: int = 3,
    bar: Bar = Bar(),
    sample: Optional[Collection[str]] = None,
    sample_name: str = "",
) -> DifficultyCard:
    """The difficulty card of ``frame`` (a table's ok rows) at ``budget_bytes`` (see the module docstring).

    ``smallest_bytes`` is the memory of the smallest configuration of the space (the bottom of the range the
    budget admits); ``predictions`` maps a surrogate kind to its out-of-fold predictions; ``sample`` holds the
    configuration hashes of a measurement-blind design (named ``sample_name``) on which random search's
    expected evaluations to target are estimated (the table's fitting configurations when it is ``None``).
    """
    higher = metric in HIGHER_IS_BETTER
    means = config_means(frame, metric)
    frac = frame["fidelity_frac"].astype(float)
    full = frame[np.isclose(frac, 1.0) & np.isfinite(frame[metric].astype(float))]
    nf = (
        noise_floor(full[metric].to_numpy(float), full["config_hash"].to_numpy(str), np.ones(len(full)))
        if len(full)
        else {"full": {"std": math.nan, "n_groups": 0}}
    )
    noise, n_noise = float(nf["full"]["std"]), int(nf["full"]["n_groups"])
    fitting = means[means["memory"] <= budget_bytes]
    repeated = fitting[fitting["n_seeds"] >= min_seeds]
    u = _best(repeated[repeated["uniform"]], higher)
    m = _best(repeated[~repeated["uniform"]], higher)
    uni = None if u is None else _stat(u, noise)
    mix = None if m is None else _stat(m, noise)
    adv = _advantage(uni, mix, higher)
    se = math.hypot(uni.se, mix.se) if uni is not None and mix is not None else math.nan
    best_known = _best(repeated if len(repeated) else fitting, higher)
    tol = tolerance_noise * noise
    target = math.nan
    if best_known is not None and math.isfinite(tol):
        target = float(best_known["mean"]) - tol if higher else float(best_known["mean"]) + tol

    def hits(configs: pd.DataFrame) -> int:
        if not math.isfinite(target):
            return 0
        return int((configs["mean"] >= target).sum() if higher else (configs["mean"] <= target).sum())

    k, n_fit = hits(fitting), int(len(fitting))
    drawn = fitting if sample is None else fitting[fitting["config_hash"].isin(set(sample))]
    k_drawn, n_drawn = hits(drawn), int(len(drawn))
    taus = {kind: surrogate_tau(p, fitting, higher, noise) for kind, p in (predictions or {}).items()}

    # The bar: trials, fidelities, the top quarter of the admitted memory range, anchors and best at min_seeds.
    ok_full = full.groupby(["config_hash", "seed"]).ngroups if len(full) else 0
    fids = frame.groupby(["config_hash", "seed"])["fidelity_frac"].nunique()
    floor = smallest_bytes + 0.75 * (budget_bytes - smallest_bytes)
    band = fitting[(fitting["memory"] >= floor)]
    anchors = means[means["uniform"]]
    best20 = fitting.sort_values("mean", ascending=not higher).iloc[: bar.n_best]
    filled = Bar(
        bar.min_full_trials,
        bar.min_band_configs,
        bar.n_best,
        min_seeds,
        full_trials=int(ok_full),
        fidelities_per_trial=int(fids.min()) if len(fids) else 0,
        band_configs=int(len(band)),
        anchors_at_min_seeds=int((anchors["n_seeds"] >= min_seeds).sum()),
        n_anchors=n_uniform_anchors,
        best_at_min_seeds=int((best20["n_seeds"] >= min_seeds).sum()),
    )
    return DifficultyCard(
        metric=metric,
        higher_is_better=higher,
        budget_name=budget_name,
        budget_bytes=int(budget_bytes),
        noise_std=noise,
        noise_configs=n_noise,
        n_fitting=n_fit,
        best_uniform=uni,
        best_mixed=mix,
        advantage=adv,
        advantage_noise=adv / noise if noise > 0 else math.nan,
        advantage_se=adv / se if se > 0 else math.nan,
        tolerance=tol,
        target=target,
        n_within=k,
        frac_within=k / n_fit if n_fit else math.nan,
        random_evals_to_target=(n_drawn + 1) / (k_drawn + 1) if n_drawn else math.nan,
        sample_name=sample_name if sample is not None else "",
        sample_fitting=n_drawn,
        sample_within=k_drawn,
        curve=_curve(means, sweep_budgets, higher, noise),
        surrogate_tau=taus,
        bar=filled,
    )
