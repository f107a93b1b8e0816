"""Claim ``compensation``: does a higher rank recover quality at low bits (bits x rank grid, interaction fit).

Verdict: on the uniform anchors, the rank x log2-bits interaction is positive with t >= 2 and rank lowers the
loss at the lowest bit width.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .context import Context, uniform_value
from .report import Claim, NotTestable
from .report import f as _f
from .report import pm as _pm
from .report import pyplot as _pyplot
from .report import save as _save
from .report import table as _table

NAME = "compensation"
TITLE = "Bit-rank compensation"
USES_SURROGATE = False
PAPER = '(3) found configurations pair low bits with high rank (bits and rank negatively correlated: "compensation")'


def _ols(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Coefficients, standard errors and residual degrees of freedom of least squares (X has the intercept)."""
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    dof = len(y) - X.shape[1]
    resid = y - X @ coef
    s2 = float(resid @ resid) / dof if dof > 0 else math.nan
    cov = s2 * np.linalg.pinv(X.T @ X)
    return coef, np.sqrt(np.maximum(np.diag(cov), 0.0)), dof


def run(ctx: Context, out: Path) -> Claim:
    """The claim's outcome (see the module docstring)."""
    c = ctx.configs
    anchors = c[c["uniform"] & np.isfinite(c["eval_loss"])]
    bits = sorted(int(b) for b in anchors["ubits"].unique())
    ranks = sorted(int(r) for r in anchors["urank"].unique())
    numbers: dict = {"grid": {}, "bits": bits, "ranks": ranks}
    rows = []
    for b in bits:
        row = [str(b)]
        cells = {}
        for r in ranks:
            sel = anchors[(anchors["ubits"] == b) & (anchors["urank"] == r)]
            if sel.empty:
                row.append("—")
                continue
            s = sel.iloc[0]
            cells[r] = float(s["eval_loss"])
            numbers["grid"][f"{b}x{r}"] = {
                "eval_loss": s["eval_loss"],
                "std": s["eval_loss_std"],
                "n_seeds": int(s["n_seeds"]),
                "accuracy": s["accuracy"],
            }
            row.append(_pm(s["eval_loss"], s["eval_loss_std"], int(s["n_seeds"])))
        gain = cells[min(cells)] - cells[max(cells)] if len(cells) >= 2 else math.nan
        numbers["grid"][f"{b}_rank_gain"] = gain
        row.append(_f(gain))
        rows.append(row)
    body = [
        "What this tests: the mechanism behind the paper's claim, that a higher LoRA rank recovers quality lost to "
        "low bits, on the uniform anchors (every block at the same bits and rank). It does not test whether the "
        "configurations a search finds pair low bits with high rank block by block.",
        "",
        "eval_loss at full fidelity, mean ± std over seeds (n = seeds). Rank gain: eval_loss at the lowest rank "
        "minus at the highest (positive = rank helps).",
        "",
    ]
    if rows:
        body += _table(["bits \\ rank", *map(str, ranks), "rank gain (nats)"], rows)
    # Interaction fit on every anchor row (seeds as replicates): one mean per bit width (so the bits effect needs
    # no functional form), a rank slope, and how that slope changes with log2 bits (the interaction).
    f = ctx.full.copy()
    f["ub"] = [uniform_value(tuple(b)) for b in f["bits"]]
    f["ur"] = [uniform_value(tuple(r)) for r in f["ranks"]]
    f = f[f["ub"].notna() & f["ur"].notna() & np.isfinite(f["eval_loss"].astype(float))]
    # A bit width seen at one rank only says nothing about the rank slope there: left out of the fit.
    fit_bits = [b for b in bits if f.loc[f["ub"] == b, "ur"].nunique() >= 2]
    f = f[f["ub"].isin(fit_bits)]
    numbers["fit_bits"] = fit_bits
    fit_ok = len(fit_bits) >= 2 and len(f) >= len(fit_bits) + 4
    if fit_ok:
        ub = f["ub"].to_numpy(int)
        xb = np.log2(ub.astype(float))
        xr = np.log2(f["ur"].to_numpy(float))
        y = f["eval_loss"].to_numpy(float)
        cb, cr = float(np.mean(np.log2(fit_bits))), xr.mean()
        onehot = np.column_stack([(ub == b).astype(float) for b in fit_bits])
        X = np.column_stack([onehot, xr - cr, (xr - cr) * (xb - cb)])
        coef, se, dof = _ols(X, y)
        t = coef / np.where(se > 0, se, np.nan)
        k = len(fit_bits)
        slope, inter = coef[k], coef[k + 1]
        numbers["fit"] = {
            "n_rows": len(y),
            "dof": dof,
            "bit_means": dict(zip(fit_bits, coef[:k].tolist())),
            "rank_slope": slope,
            "rank_slope_se": se[k],
            "interaction": inter,
            "interaction_se": se[k + 1],
            "interaction_t": t[k + 1],
            "centre_log2_bits": cb,
            "centre_log2_rank": cr,
        }
        slopes = {b: slope + inter * (math.log2(b) - cb) for b in fit_bits}
        numbers["rank_slope_per_bits"] = slopes
        body += [
            "",
            f"Fit over {len(y)} anchor rows at bits {fit_bits} ({dof} residual dof): eval_loss = a[bits] + b·(log2 rank − "
            f"{cr:.2f}) + c·(log2 rank − {cr:.2f})(log2 bits − {cb:.2f}), one level a per bit width. "
            "Compensation means c > 0: a doubling of rank lowers the loss more at low bits.",
            "",
        ]
        body += _table(
            ["term", "coefficient", "std error", "t"],
            [
                ["b: rank slope (nats per doubling, at the mean log2 bits)", _f(slope, 5), _f(se[k], 5), _f(t[k], 2)],
                ["c: rank x bits interaction", _f(inter, 5), _f(se[k + 1], 5), _f(t[k + 1], 2)],
            ],
        )
        body += [
            "",
            "Slope of eval_loss per doubling of rank, at each bit width (negative = rank helps): "
            + ", ".join(f"{b} bits {s:+.4f}" for b, s in slopes.items())
            + ".",
        ]
    mixed = c[~c["uniform"] & np.isfinite(c["eval_loss"])]
    if len(mixed) >= 10:
        m = mixed
        xb = np.array([np.mean(np.log2(b)) for b in m["bits"]])
        xr = np.array([np.mean(np.log2(np.maximum(r, 1))) for r in m["ranks"]])
        y = m["eval_loss"].to_numpy(float)
        X = np.column_stack([np.ones(len(y)), xb - xb.mean(), xr - xr.mean(), (xb - xb.mean()) * (xr - xr.mean())])
        coef, se, dof = _ols(X, y)
        numbers["fit_all_configs"] = {"n": len(y), "coef": coef.tolist(), "se": se.tolist()}
        body += [
            "",
            f"Mixed configurations ({len(y)}; mean log2 bits and mean log2 rank of each, linear in both with "
            f"their product): rank slope {coef[2]:+.5f} ± {se[2]:.5f}, interaction "
            f"{coef[3]:+.5f} ± {se[3]:.5f} (a crude summary: a mixed configuration is not its averages).",
        ]
    if rows and len(ranks) >= 2:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(5.6, 3.8), dpi=110)
        for b in bits:
            sel = anchors[anchors["ubits"] == b].sort_values("urank")
            ax.errorbar(
                sel["urank"].astype(float),
                sel["eval_loss"],
                marker="o",
                capsize=3,
                label=f"{b} bits",
                yerr=np.nan_to_num(sel["eval_loss_std"].to_numpy(float)),
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("LoRA rank (every block)")
        ax.set_ylabel("eval_loss (nats/token)")
        ax.set_title("uniform anchors: does rank compensate low bits?", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        numbers["plot"] = _save(fig, out, NAME)
    if not fit_ok:
        raise NotTestable(
            f"needs uniform anchors at >= 2 bit widths with >= 2 ranks each (and 4 rows more than bit "
            f"widths); have bits {fit_bits} with >= 2 ranks, {len(f)} rows",
            body,
            numbers,
        )
    fit = numbers["fit"]
    b3, t3, dof = fit["interaction"], fit["interaction_t"], fit["dof"]
    low = slopes[fit_bits[0]]
    if dof < 2 or not math.isfinite(t3):
        raise NotTestable(f"too few anchor rows for the interaction fit ({dof} residual dof)", body, numbers)
    comp = b3 > 0 and t3 >= 2 and low < 0
    text = (
        f"rank x bits interaction c = {b3:+.4f} (t = {t3:.1f}, {dof} dof); per rank doubling eval_loss changes "
        f"{low:+.4f} nats at {fit_bits[0]} bits and {slopes[fit_bits[-1]]:+.4f} at {fit_bits[-1]} bits"
    )
    return Claim(
        NAME,
        (
            "supported — higher rank recovers more at low bits: "
            if comp
            else "not supported — no significant compensation: "
        )
        + text,
        body,
        numbers,
    )
