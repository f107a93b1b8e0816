"""Claim ``proxy``: correlation of static proxies (before fine-tuning) with the fine-tuned eval_loss.

Verdict: the strongest static proxy has |Spearman| <= 0.7 with the fine-tuned eval_loss over all configurations.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .context import PROXIES, Context
from .report import Claim, NotTestable
from .report import f as _f
from .report import pyplot as _pyplot
from .report import save as _save
from .report import table as _table

NAME = "proxy"
TITLE = "Static proxies before fine-tuning vs the fine-tuned result"
USES_SURROGATE = False
PAPER = (
    "(2) static proxies (perplexity, reconstruction error before fine-tuning) correlate only about "
    "rho = 0.46 with fine-tuned accuracy"
)


def _bootstrap_spearman(x: np.ndarray, y: np.ndarray, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of Spearman's rho over ``n`` resamples of the pairs (vectorized)."""
    from scipy.stats import rankdata

    idx = np.random.default_rng(seed).integers(0, len(x), (n, len(x)))
    rx, ry = rankdata(x[idx], axis=1), rankdata(y[idx], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    ok = den > 0  # a resample with a constant side has no rank correlation
    if not ok.any():
        return math.nan, math.nan
    rho = (rx * ry).sum(axis=1)[ok] / den[ok]
    return float(np.percentile(rho, 2.5)), float(np.percentile(rho, 97.5))


def run(ctx: Context, out: Path) -> Claim:
    """The claim's outcome (see the module docstring)."""
    from scipy import stats

    from qra_bench.errors import QRBenchError

    c = ctx.configs
    numbers: dict = {"all": {}, "within_budget": {}}
    rows = []
    try:
        inside_hashes = set(ctx.within_budget()["config_hash"])
    except QRBenchError:  # no budget can be rebuilt: the within-budget columns stay empty
        inside_hashes = set()
    usable = {}
    for proxy in PROXIES:
        for scope, frame in (("all", c), ("within_budget", c[c["config_hash"].isin(inside_hashes)])):
            ok = frame[np.isfinite(frame[proxy]) & np.isfinite(frame["eval_loss"])]
            x, y = ok[proxy].to_numpy(float), ok["eval_loss"].to_numpy(float)
            if len(ok) >= 5 and len(np.unique(x)) >= 3 and np.ptp(y) > 0:
                rho, pearson = float(stats.spearmanr(x, y)[0]), float(stats.pearsonr(x, y)[0])
                lo, hi = _bootstrap_spearman(x, y) if scope == "all" else (math.nan, math.nan)
            else:
                rho = pearson = lo = hi = math.nan
            acc = ok[np.isfinite(ok["accuracy"])]
            rho_acc = (
                float(stats.spearmanr(acc[proxy], acc["accuracy"])[0])
                if len(acc) >= 5 and acc[proxy].nunique() >= 3 and acc["accuracy"].nunique() >= 2
                else math.nan
            )
            numbers[scope][proxy] = {
                "n": len(ok),
                "n_distinct_proxy": int(len(np.unique(x))),
                "spearman": rho,
                "pearson": pearson,
                "spearman_ci95": [lo, hi],
                "spearman_vs_accuracy": rho_acc,
            }
            if scope == "all" and math.isfinite(rho):
                usable[proxy] = (x, y, rho)
        a, w = numbers["all"][proxy], numbers["within_budget"][proxy]
        rows.append(
            [
                proxy,
                f"{a['n']} ({a['n_distinct_proxy']} distinct)",
                _f(a["spearman"], 3),
                f"[{_f(a['spearman_ci95'][0], 2)}, {_f(a['spearman_ci95'][1], 2)}]",
                _f(a["pearson"], 3),
                _f(a["spearman_vs_accuracy"], 3),
                f"{w['n']}",
                _f(w["spearman"], 3),
                _f(w["pearson"], 3),
                "0.46 (vs accuracy)",
            ]
        )
    body = [
        "Each configuration's proxies (measured on the quantized model before fine-tuning) against its fine-tuned "
        "eval_loss, means over seeds at full fidelity. A positive rho means the proxy ranks configurations the "
        "same way as the fine-tuned loss (against accuracy, agreement shows as a negative rho for these loss-like "
        "proxies; the paper's 0.46 is a magnitude). Proxies depend on the bits only (LoRA starts at zero), so "
        "configurations differing only in rank tie on them. CI: bootstrap over configurations (1000 resamples).",
        "",
    ]
    body += _table(
        [
            "proxy",
            "configs (all)",
            "Spearman (all)",
            "95% CI",
            "Pearson (all)",
            "Spearman vs accuracy (all)",
            "configs (in budget)",
            "Spearman (in budget)",
            "Pearson (in budget)",
            "paper rho",
        ],
        rows,
    )
    if usable:
        plt = _pyplot()
        fig, axes = plt.subplots(1, len(usable), figsize=(3.4 * len(usable), 3.2), dpi=110, squeeze=False)
        for ax, (proxy, (x, y, rho)) in zip(axes[0], usable.items()):
            ax.scatter(x, y, s=12)
            ax.set_xlabel(proxy)
            ax.set_ylabel("eval_loss after fine-tuning")
            ax.set_title(f"Spearman {rho:.2f}", fontsize=9)
            ax.grid(alpha=0.3)
        numbers["plot"] = _save(fig, out, NAME)
    if not usable:
        raise NotTestable(
            "needs >= 5 configurations with proxies and eval_loss and >= 3 distinct proxy values", body, numbers
        )
    best = max(usable, key=lambda p: abs(usable[p][2]))
    rho = usable[best][2]
    verdict = "supported" if abs(rho) <= 0.7 else "not supported"
    return Claim(
        NAME,
        f"{verdict} — the strongest static proxy ({best}) has Spearman {rho:.2f} with the fine-tuned "
        f"eval_loss over all configurations (paper: about 0.46; we call a proxy weak when |rho| <= 0.7)",
        body,
        numbers,
    )
