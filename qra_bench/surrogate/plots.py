"""The two figures of a surrogate: parity (held-out predicted vs observed) and learning curve (PNG, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from qra_bench.surrogate.evaluate import Z90


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    return plt


def _fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.3f}"


def parity_plot(predictions: pd.DataFrame, manifest: dict, path: Path) -> None:
    """Held-out random-split predictions against observations, with 90 % intervals and the y = x line."""
    plt = _pyplot()
    target = manifest["target"]["name"]
    m = manifest["metrics"].get("random_5fold", {})
    noise = manifest["noise_floor"]["full"]["std"]
    fig, ax = plt.subplots(figsize=(5.2, 5.0), dpi=110)
    y, mean, std = (predictions[c].to_numpy(dtype=float) for c in ("observed", "mean", "std"))
    if len(y):
        ax.errorbar(
            y,
            mean,
            yerr=Z90 * std,
            fmt="o",
            ms=3,
            alpha=0.6,
            elinewidth=0.6,
            capsize=0,
            label="held-out row, 90 % interval",
        )
        lo, hi = float(min(y.min(), mean.min())), float(max(y.max(), mean.max()))
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=0.8, label="y = x")
    ax.set_xlabel(f"observed {target} (full fidelity)")
    ax.set_ylabel(f"predicted {target}")
    model = manifest["model"]["kind"]
    ax.set_title(f"{model} surrogate, random 5-fold (by configuration)", fontsize=9)
    text = (
        f"R² {_fmt(m.get('r2'))}  Spearman {_fmt(m.get('spearman'))}  τ {_fmt(m.get('kendall_tau'))}\n"
        f"RMSE {_fmt(m.get('rmse'))}  seed-noise std {_fmt(noise)}  90 % coverage {_fmt(m.get('coverage90'))}"
    )
    ax.text(
        0.02,
        0.98,
        text,
        transform=ax.transAxes,
        va="top",
        fontsize=7.5,
        bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
    )
    ax.legend(loc="lower right", fontsize=7.5)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def learning_curve_plot(manifest: dict, path: Path) -> None:
    """RMSE (with the seed-noise floor) and rank correlations against training rows."""
    plt = _pyplot()
    curve = manifest["learning_curve"]
    n = [p.get("n_train_rows") or np.nan for p in curve]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.0, 3.8), dpi=110)
    ax1.plot(n, [p.get("rmse") if p.get("rmse") is not None else np.nan for p in curve], "o-", label="held-out RMSE")
    noise = manifest["noise_floor"]["full"]["std"]
    if noise is not None and np.isfinite(noise):
        ax1.axhline(noise, color="k", ls="--", lw=0.8, label="seed-noise std")
    ax1.set_xlabel("training rows")
    ax1.set_ylabel(f"RMSE ({manifest['target']['name']})")
    ax1.legend(fontsize=8)
    for key, label in (("spearman", "Spearman"), ("kendall_tau", "Kendall τ"), ("coverage90", "90 % coverage")):
        ax2.plot(n, [p.get(key) if p.get(key) is not None else np.nan for p in curve], "o-", label=label)
    ax2.set_xlabel("training rows")
    ax2.set_ylim(-0.05, 1.05)
    ax2.legend(fontsize=8)
    fig.suptitle(f"{manifest['model']['kind']} surrogate learning curve (random 5-fold, by configuration)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
