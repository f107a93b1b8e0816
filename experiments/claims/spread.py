"""Claim ``spread``: the spread of the configurations within one budget against the seed noise.

Verdict: accuracy max - min within the budget exceeds 25 points (the paper's words); the weaker form, spread
above seed noise, is reported beside it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .context import Context
from .report import Claim, NotTestable
from .report import f as _f
from .report import pyplot as _pyplot
from .report import save as _save
from .report import table as _table

NAME = "spread"
TITLE = "Spread of configurations within one budget"
USES_SURROGATE = False
PAPER = "(1) at one memory budget, configurations differ by more than 25 accuracy points"


def run(ctx: Context, out: Path) -> Claim:
    """The claim's outcome (see the module docstring)."""
    if ctx.configs.empty:
        raise NotTestable("the table has no full-fidelity rows")
    budget, how = ctx.budget()
    inside = ctx.within_budget()
    numbers: dict = {"budget_bytes": budget, "n_configs_within_budget": len(inside)}
    rows = []
    for metric, scale, unit in (("eval_loss", 1.0, "nats"), ("accuracy", 100.0, "points")):
        v = inside[metric].to_numpy(float) * scale
        v = v[np.isfinite(v)]
        sigma, n_rep = ctx.noise(metric)
        sigma *= scale
        rng = float(np.ptp(v)) if len(v) else math.nan
        std = float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
        numbers[metric] = {
            "range": rng,
            "std": std,
            "noise_std": sigma,
            "n_repeated": n_rep,
            "n": len(v),
            "min": float(v.min()) if len(v) else math.nan,
            "max": float(v.max()) if len(v) else math.nan,
        }
        rows.append(
            [
                metric,
                unit,
                str(len(v)),
                _f(rng),
                _f(std),
                _f(sigma),
                _f(rng / sigma if sigma else math.nan, 1),
                _f(std / sigma if sigma else math.nan, 1),
                "> 25 points" if metric == "accuracy" else "—",
            ]
        )
    body = [
        f"Configurations of the table whose `mem_predicted_bytes` fits `{ctx.budget_name}` ({budget:,} bytes, {how}); "
        "each one's mean over its seeds at full fidelity. Seed noise: pooled std over configurations with >= 2 "
        "seeds.",
        "",
    ]
    body += _table(
        ["metric", "unit", "configs", "max - min", "std", "seed-noise std", "range / noise", "std / noise", "paper"],
        rows,
    )
    if len(inside) >= 2:
        plt = _pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), dpi=110)
        for ax, metric, scale in zip(axes, ("eval_loss", "accuracy"), (1.0, 100.0)):
            v = np.sort(inside[metric].to_numpy(float) * scale)
            ax.plot(np.arange(len(v)), v, "o", ms=3)
            sigma = ctx.noise(metric)[0] * scale
            if math.isfinite(sigma):
                ax.fill_between([0, len(v) - 1], v.min() - sigma, v.min() + sigma, alpha=0.2, label="± seed-noise std")
                ax.legend(fontsize=7)
            ax.set_xlabel("configuration (sorted)")
            ax.set_ylabel(metric + (" (%)" if metric == "accuracy" else " (nats)"))
            ax.grid(alpha=0.3)
        fig.suptitle(f"within {ctx.budget_name}: {len(inside)} configurations", fontsize=10)
        numbers["plot"] = _save(fig, out, NAME)
    if len(inside) < 5:
        raise NotTestable(f"only {len(inside)} configurations within the budget (need >= 5)", body, numbers)
    acc = numbers["accuracy"]
    loss = numbers["eval_loss"]
    if not math.isfinite(acc["range"]):
        raise NotTestable("no accuracy values within the budget", body, numbers)
    weak = ""
    if math.isfinite(loss["noise_std"]) and loss["noise_std"] > 0:
        ratio = loss["std"] / loss["noise_std"]
        weak = (
            f"; the weaker form (configurations differ by more than seed noise) "
            f"{'holds' if ratio > 2 else 'does not hold'}: eval_loss std {ratio:.1f}x the seed noise"
        )
    else:
        weak = "; no seed repeats yet to compare the spread with noise"
    verdict = "supported" if acc["range"] > 25 else "not supported"
    return Claim(
        NAME,
        f"{verdict} — accuracy differs by {acc['range']:.2f} points within the budget (paper: > 25){weak}",
        body,
        numbers,
    )
