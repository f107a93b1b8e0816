"""Claim ``screening``: out-of-fold surrogate screening hit rate of the true top 10 %.

Verdict: the surrogate's out-of-fold top 20 % holds more of the true top 10 % than random screening, with a
hypergeometric p < 0.05.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .context import Context
from .report import Claim, NotTestable
from .report import pyplot as _pyplot
from .report import save as _save
from .report import table as _table

NAME = "screening"
TITLE = "Surrogate screening hit rate"
USES_SURROGATE = True
PAPER = "(4) surrogate screening raises top-3 hit rate from 44.7% to 67.3%"


def _out_of_fold(ctx: Context) -> tuple[pd.DataFrame, str]:
    """Per configuration: observed mean target and out-of-fold predicted mean at full fidelity, and the source."""
    art = ctx.artifact()
    if art.predictions is not None and {"config_hash", "fidelity_frac", "observed", "mean"} <= set(art.predictions):
        p = art.predictions
        p = p[np.isclose(p["fidelity_frac"].astype(float), 1.0)]
        src = (
            "the artifact's predictions.csv (random 5-fold split by configuration, out-of-fold, fitted on table hash "
            f"`{art.table_hash[:16]}`)"
        )
    else:
        from sklearn.base import clone

        from qra_bench.surrogate.evaluate import group_kfold, run_split
        from qra_bench.surrogate.fit import training_set

        ts = training_set(ctx.table_path, art.target, art.manifest["fidelity"]["mode"])
        res = run_split(lambda: clone(art.estimator), ts.data, group_kfold(ts.data.groups, seed=0))
        p = pd.DataFrame({"config_hash": ts.data.groups[res.rows], "observed": ts.data.y[res.rows], "mean": res.mean})
        src = "a 5-fold refit by configuration of the surrogate's estimator on the table (no predictions.csv)"
    g = p.groupby("config_hash", sort=True)[["observed", "mean"]].mean().reset_index()
    return g, src


def run(ctx: Context, out: Path) -> Claim:
    """The claim's outcome (see the module docstring)."""
    from scipy import stats

    art = ctx.artifact()
    g, src = _out_of_fold(ctx)
    sign = 1.0 if art.higher_is_better else -1.0
    n = len(g)
    body = [
        f"Target: {art.target} ({'higher' if art.higher_is_better else 'lower'} is better). Predictions: {src}. "
        "Hit rate at k: the share of the true top 10 % configurations (by observed mean) that are in the "
        "surrogate's top k. Random screening would hit k/n on average; p: the hypergeometric chance of at least "
        "as many hits by random choice.",
        "",
    ]
    numbers: dict = {"target": art.target, "n_configs": n, "source": src}
    if n < 20:
        raise NotTestable(
            f"only {n} configurations with out-of-fold predictions (need >= 20 so the top 10 % has >= 2)", body, numbers
        )
    obs = sign * g["observed"].to_numpy(float)
    pred = sign * g["mean"].to_numpy(float)
    n_top = max(1, int(round(0.1 * n)))
    true_top = set(np.argsort(-obs, kind="stable")[:n_top].tolist())
    rows = []
    for frac in (0.1, 0.2):
        k = max(1, int(round(frac * n)))
        picked = set(np.argsort(-pred, kind="stable")[:k].tolist())
        hits = len(true_top & picked)
        p = float(stats.hypergeom.sf(hits - 1, n, n_top, k))
        numbers[f"top{int(frac * 100)}"] = {"k": k, "hits": hits, "hit_rate": hits / n_top, "random": k / n, "p": p}
        rows.append(
            [
                f"{int(frac * 100)} % (k={k})",
                f"{hits}/{n_top} = {100 * hits / n_top:.1f} %",
                f"{100 * min(1.0, k / n):.1f} %",
                f"{p:.3g}",
            ]
        )
    top3 = set(np.argsort(-obs, kind="stable")[:3].tolist())
    pick3 = set(np.argsort(-pred, kind="stable")[:3].tolist())
    numbers["top3_overlap"] = len(top3 & pick3) / 3
    rho = float(stats.spearmanr(obs, pred)[0])
    numbers["spearman"] = rho
    body += _table(["surrogate top k", "hit rate (ours)", "random screening", "p (hypergeometric)"], rows)
    body += [
        "",
        f"Top-3 overlap (true top 3 among the surrogate's top 3): {100 * numbers['top3_overlap']:.1f} % "
        "(paper's top-3 hit rate: 44.7 % without, 67.3 % with surrogate screening). Out-of-fold Spearman over "
        f"configurations: {rho:.3f}.",
    ]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.2), dpi=110)
    top_mask = np.array([i in true_top for i in range(n)])
    ax.scatter(g["observed"][~top_mask], g["mean"][~top_mask], s=10, color="0.6", label="others")
    ax.scatter(g["observed"][top_mask], g["mean"][top_mask], s=18, color="C3", label="true top 10 %")
    ax.set_xlabel(f"observed {art.target} (mean over seeds)")
    ax.set_ylabel(f"out-of-fold predicted {art.target}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    numbers["plot"] = _save(fig, out, NAME)
    t20 = numbers["top20"]
    verdict = "supported" if t20["hit_rate"] > t20["random"] and t20["p"] < 0.05 else "not supported"
    return Claim(
        NAME,
        f"{verdict} — the surrogate's top 20 % holds {100 * t20['hit_rate']:.0f} % of the true top "
        f"10 % (random screening: {100 * t20['random']:.0f} %, p = {t20['p']:.3g})",
        body,
        numbers,
    )
