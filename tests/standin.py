"""A deterministic analytic quality function: the TEST STAND-IN for a fitted surrogate.

It is made up. It models no measured fine-tuning result and nothing computed with it may be reported as a
result of qra-bench; it exists so that the search algorithms can be tested and timed without a results table.
It has the qualitative shape the early landscape probes (docs/landscape.md) point at (a few bit-sensitive blocks, a few different
rank-hungry blocks, a damage cliff at low bits, diminishing returns in rank, and rank that partly repairs
quantization damage), which makes it a non-trivial landscape for a budgeted search.

quality(C) = 1 - sum_l s_l d(q_l) (1 - c g(r_l)) / sum_l s_l  +  a sum_l p_l g(r_l) / sum_l p_l
with d(q) = exp(-1.2 (q - 2)) (0 at 16 bits), g(r) = 1 - exp(-log2(1 + r) / 3), c = 0.5, a = 0.3.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from qra_bench.space import QRConfig, SearchSpace
from qra_bench.search.base import Priors

__all__ = ["AnalyticStandIn"]


def _minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return np.full(len(x), 0.5) if hi - lo <= 1e-12 else (x - lo) / (hi - lo)


class AnalyticStandIn:
    """Test stand-in predictor ``(bit_idx, rank_idx) -> (mean, std)`` for ``space`` (see module docstring).

    Parameters
    ----------
    space
        Ladders and number of blocks.
    noise
        Base of the (deterministic, made-up) predictive std; it grows with the number of 2-bit blocks.
    """

    def __init__(self, space: SearchSpace, noise: float = 0.01) -> None:
        self.space, self.noise = space, noise
        L = space.n_blocks
        l = np.arange(L)
        # Bit sensitivity: first, last and middle block stand out; the rest are small and uneven.
        s = 0.03 + 0.05 * ((l * 7) % 5) / 4
        s[0], s[-1], s[L // 2] = 1.0, 0.6, 0.4
        # Plasticity: a different set of blocks.
        p = 0.1 + 0.1 * ((l * 3) % 4) / 3
        p[min(1, L - 1)], p[L // 3], p[(2 * L) // 3] = 0.8, 0.6, 0.5
        self.sensitivity, self.plasticity = s, p
        bits = np.asarray(space.bits, dtype=float)
        ranks = np.asarray(space.ranks, dtype=float)
        self._damage = np.where(bits >= 16, 0.0, np.exp(-1.2 * (bits - 2)))
        self._gain = 1.0 - np.exp(-np.log2(1.0 + ranks) / 3.0)

    def __call__(self, bit_idx: np.ndarray, rank_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bi, ri = np.atleast_2d(bit_idx), np.atleast_2d(rank_idx)
        d, g = self._damage[bi], self._gain[ri]
        s, p = self.sensitivity, self.plasticity
        quality = 1.0 - (d * (1.0 - 0.5 * g)) @ s / s.sum() + 0.3 * (g @ p) / p.sum()
        std = self.noise * (1.0 + 2.0 * (bi == 0).mean(axis=1))
        return quality, std

    def quality(self, cfg: QRConfig) -> float:
        """Stand-in quality of one configuration."""
        m, _ = self(self.space.bit_index(cfg)[None], self.space.rank_index(cfg)[None])
        return float(m[0])

    def priors(self, noise: float = 0.0, seed: Optional[int] = None) -> Priors:
        """Importance priors derived from the stand-in's own block weights (optionally perturbed), the way
        Stage 0 would measure them on a real model: ``raw_q`` = damage of the lowest bit width."""
        rng = np.random.default_rng(seed)
        raw_q = self.sensitivity * self._damage[0]
        raw_r = self.plasticity.copy()
        if noise:
            raw_q = raw_q * (1 + noise * rng.standard_normal(len(raw_q)))
            raw_r = raw_r * (1 + noise * rng.standard_normal(len(raw_r)))
        return Priors(
            importance_q=tuple(_minmax(raw_q)),
            importance_r=tuple(_minmax(raw_r)),
            raw_q=tuple(float(x) for x in raw_q),
            raw_r=tuple(float(x) for x in raw_r),
        )
