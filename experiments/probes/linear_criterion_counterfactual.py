"""Could *any* additive landscape pass the landscape's linear criterion on the configurations a budget admits?

The criterion asks that, across random configurations fitting ``uniform-4bit``, a linear fit of the main metric on
average bits and average log2 rank lose at least 0.10 of R^2 when either regressor is dropped. This probe
takes the configurations the shipped table actually measured within that budget, and scores them with
additive per-block models (cost of a block at 2 bits, at 3 bits, and per log2 rank, one set per block) plus
Gaussian seed noise, then runs the criterion on the simulated scores:

1. ``fitted``: the per-block model fitted to the task's own table (does it reproduce the measured verdict?);
2. ``even blocks``: the same, with every block's 2-bit and 3-bit costs replaced by their median over blocks
   (what a model without a dominant first block would look like);
3. ``even blocks, cipher rank``: 2. with each block's rank effect taken from ``cipher`` (rank buys capacity);
4. ``linear in bits``: each block's cost proportional to (16 - bits), scaled so uniform 2-bit costs what it
   does in the table -- the only shape average bits summarizes exactly; with ``cipher``'s rank effect;
5. ``quantizer-noise shape``: each block's cost proportional to 4^-bits - 4^-16 (a uniform quantizer's error
   variance), same scaling, ``cipher``'s rank effect.

Nothing here is a trial; it says which property of a landscape the criterion measures. CPU seconds.

    python experiments/probes/linear_criterion_counterfactual.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from landscape import _fit, _r2, full_fidelity_rows  # noqa: E402
from landscape_design import trial_memory_model  # noqa: E402


def per_block_design(bits: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Columns: 2-bit indicator per block, 3-bit indicator per block, log2 rank per block."""
    return np.column_stack([bits == 2, bits == 3, np.log2(ranks)]).astype(float)


def configs(table: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, "object"]:
    """Every measured configuration (bits, ranks, mean eval loss), the seed-noise std, and the frame."""
    df, _ = full_fidelity_rows([table])
    g = df.groupby("config_hash").agg(
        y=("eval_loss", "mean"),
        sd=("eval_loss", "std"),
        n=("eval_loss", "count"),
        bits=("bits", "first"),
        ranks=("ranks", "first"),
    )
    noise = float(np.sqrt((g.loc[g["n"] >= 3, "sd"] ** 2).mean()))
    B = np.array([list(x) for x in g["bits"]])
    R = np.array([list(x) for x in g["ranks"]])
    return B, R, g["y"].to_numpy(), noise, df


def criterion(bits: np.ndarray, ranks: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(R^2 of both, drop without average bits, drop without average log2 rank)."""
    X = np.column_stack([bits.mean(axis=1), np.log2(ranks).mean(axis=1)])
    full = _r2(X, y)
    return full, full - _r2(X[:, [1]], y), full - _r2(X[:, [0]], y)


def main() -> None:
    from qra_bench.arch import load_arch
    from qra_bench.space import QRConfig, SearchSpace

    news = "datasets_cache/tables/tiny-news"
    B, R, y, noise, df = configs(news)
    Bc, Rc, yc, _, _ = configs("datasets_cache/tables/tiny-cipher")
    n = B.shape[1]
    coef, r2 = _fit(per_block_design(B, R), y)
    two, three, rank = coef[1 : 1 + n], coef[1 + n : 1 + 2 * n], coef[1 + 2 * n :]
    coef_c, r2_c = _fit(per_block_design(Bc, Rc), yc)
    rank_c = coef_c[1 + 2 * n :]

    arch = load_arch("tiny")
    mm = trial_memory_model(arch, SearchSpace(n), "news")
    budget = mm.budget("uniform-4bit")
    keep = np.array([mm.is_feasible(QRConfig(list(b), list(r)), budget) and len(set(b)) > 1 for b, r in zip(B, R)])
    Bf, Rf = B[keep], R[keep]
    uniform2 = float(two.sum())  # what the fitted model charges uniform 2-bit over uniform 16-bit

    def score(c2, c3, cr, shape=None):
        if shape is not None:
            f = shape(Bf.astype(float)) - shape(16.0)
            base = (f * uniform2 / (n * (shape(2.0) - shape(16.0)))).sum(axis=1)
        else:
            base = (Bf == 2) @ c2 + (Bf == 3) @ c3
        return base + np.log2(Rf) @ cr

    rng = np.random.default_rng(0)
    even2, even3 = np.full(n, np.median(two)), np.full(n, np.median(three))
    linear, noise_shape = (lambda b: -b), (lambda b: 4.0**-b)
    models = {
        "fitted (news)": (two, three, rank, None),
        "even blocks": (even2, even3, rank, None),
        "even blocks, cipher rank": (even2, even3, rank_c, None),
        "fitted bits, cipher rank": (two, three, rank_c, None),
        "quantizer-noise shape (4^-bits), cipher rank": (None, None, rank_c, noise_shape),
        "linear in bits, news rank": (None, None, rank, linear),
        "linear in bits, cipher rank": (None, None, rank_c, linear),
    }
    print(
        f"table {news}: {len(B)} configurations, {keep.sum()} non-uniform within uniform-4bit; "
        f"per-block model R^2 news {r2:.3f}, cipher {r2_c:.3f}; seed noise {noise:.4f} nats"
    )
    print(
        f"news 2-bit cost per block: {np.round(two, 3).tolist()}; rank per block (log2): news "
        f"{np.round(rank, 4).tolist()}, cipher {np.round(rank_c, 4).tolist()}"
    )
    print(
        "measured (table means): R^2 / drop bits / drop rank = "
        + " / ".join(f"{v:.3f}" for v in criterion(Bf, Rf, y[keep]))
    )
    print(
        "| landscape (additive, + seed noise) | R^2 both | drop without avg bits | drop without avg log2 rank | passes |"
    )
    print("|---|---|---|---|---|")
    for name, (c2, c3, cr, shape) in models.items():
        sims = np.array(
            [criterion(Bf, Rf, score(c2, c3, cr, shape) + rng.normal(0, noise, len(Bf))) for _ in range(200)]
        )
        m = sims.mean(axis=0)
        ok = (sims[:, 1] >= 0.10) & (sims[:, 2] >= 0.10)
        print(f"| {name} | {m[0]:.3f} | {m[1]:.3f} | {m[2]:.3f} | {ok.mean():.0%} of 200 noise draws |")


if __name__ == "__main__":
    main()
