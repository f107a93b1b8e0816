"""Claim ``ablations``: bits-only and rank-only AutoQRA vs full AutoQRA (surrogate-predicted).

Verdict: full AutoQRA beats both the bits-only and the rank-only search by more than one seed-noise std.
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
from .report import seed_text as _seed_text
from .report import table as _table

NAME = "ablations"
TITLE = "Bits-only and rank-only AutoQRA"
USES_SURROGATE = True
PAPER = "(6) removing the warm start, either stage, the surrogate, or searching bits only / ranks only, each hurts"


def run(ctx: Context, out: Path) -> Claim:
    """The claim's outcome (see the module docstring)."""
    from qra_bench.errors import QRBenchError

    art = ctx.artifact()
    sign = ctx.sign()
    seeds = ctx.options.ablation_seeds
    variants = {"both": "full AutoQRA", "bits": "bits only (rank fixed)", "ranks": "ranks only (bits fixed)"}
    values: dict[str, list[float]] = {v: [] for v in variants}
    rows = []
    for seed in seeds:
        row = [str(seed)]
        for axes in variants:
            try:
                res = ctx.autoqra(seed, axes)
            except QRBenchError as exc:
                raise NotTestable(f"the {axes} search cannot run at this budget: {exc}") from None
            v = sign * res.predicted_mean
            values[axes].append(v)
            row.append(
                f"{v:.4f} ± {res.predicted_std:.4f} (bits {res.incumbent.avg_bits:.2f}, rank "
                f"{res.incumbent.avg_rank:.1f})"
            )
        rows.append(row)
    sigma, n_rep = ctx.noise(art.target)
    src = f"table seed noise ({n_rep} repeated configurations)"
    if not math.isfinite(sigma):
        sigma = (art.manifest.get("noise_floor", {}).get("full", {}) or {}).get("std") or math.nan
        src = "the surrogate manifest's noise floor"
    means = {v: float(np.mean(values[v])) for v in variants}
    better = {v: sign * (means["both"] - means[v]) for v in ("bits", "ranks")}  # > 0: the full search is better
    body = [
        f"Predictor-only AutoQRA (both stages against the surrogate, no real trials) at `{ctx.budget_name}` "
        f"({ctx.budget()[0]:,} bytes), seeds {_seed_text(list(seeds))}: the surrogate's predicted {art.target} "
        "(mean ± std) of each search's incumbent. The bits-only search fixes every rank at 16 and the rank-only "
        "search every bit width at 4 (lowered rung by rung if that does not fit; see `restrict_axes`). Not "
        "tested here: removing the warm start, either stage or the surrogate.",
        "",
    ]
    body += _table(["seed", *variants.values()], rows)
    body += [
        "",
        *_table(
            ["", *variants.values()],
            [
                [f"mean predicted {art.target}", *(f"{means[v]:.4f}" for v in variants)],
                ["full better by", "—", f"{better['bits']:+.4f}", f"{better['ranks']:+.4f}"],
            ],
        ),
        "",
        f"Seed-noise std of {art.target}: {_f(sigma)} ({src}).",
    ]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=110)
    for i, v in enumerate(variants):
        ax.scatter(np.full(len(values[v]), i), values[v], s=16)
        ax.hlines(means[v], i - 0.25, i + 0.25, color="k")
    ax.set_xticks(range(len(variants)), list(variants.values()), fontsize=8)
    ax.set_ylabel(f"predicted {art.target} of the incumbent")
    ax.grid(alpha=0.3)
    numbers = {
        "target": art.target,
        "seeds": list(seeds),
        "values": values,
        "means": means,
        "full_better_by": better,
        "noise_std": sigma,
        "noise_source": src,
        "plot": _save(fig, out, NAME),
    }
    if not math.isfinite(sigma):
        raise NotTestable(
            "no seed-noise estimate (no configuration has two seeds) to judge the differences against", body, numbers
        )
    hurts = {v: better[v] > sigma for v in better}
    rule = f"by more than one seed-noise std ({sigma:.4f})"
    verdict = "supported" if all(hurts.values()) else "not supported"
    return Claim(
        NAME,
        f"{verdict} — full AutoQRA's predicted {art.target} is better than bits-only by "
        f"{better['bits']:+.4f} and than rank-only by {better['ranks']:+.4f}; a variant hurts when "
        f"full is better {rule}: "
        + ", ".join(f"{v}-only {'hurts' if h else 'does not hurt'}" for v, h in hurts.items()),
        body,
        numbers,
    )
