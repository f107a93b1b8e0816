"""Feature encoding of configurations for the surrogates: one vectorized numpy pass from rung indices.

Features, in :attr:`FeatureEncoder.feature_names` order (``L`` = number of blocks):

- ``bits_<l>``, ``rank_<l>``: every block's bit and rank rung position scaled to [0, 1] (ordinal; the same
  values as :meth:`~qra_bench.space.SearchSpace.encode`).
- ``avg_bits``, ``avg_rank``: the mean bit width and the mean rank over blocks (bits, rank units).
- ``mem_gib``: the configuration's total training memory from the :class:`~qra_bench.memory.MemoryModel`
  (GiB = 2**30 bytes), plus ``memory_offset`` bytes.
- ``bit_coverage``, ``rank_coverage``: distinct rungs used / rungs on the ladder.
- ``iq_bits``, ``ir_rank``: importance-weighted means ``sum_l I_q(l) * bits_l / L`` and
  ``sum_l I_r(l) * rank_l / L`` (constant zero when no priors are given).
- ``fidelity_frac``: the fraction of the full run, when ``include_fidelity``.

The search calls :meth:`FeatureEncoder.transform` on millions of configurations, so it never builds a
:class:`~qra_bench.space.QRConfig`: everything is table look-ups and row sums on ``(n, L)`` index arrays.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from qra_bench.errors import QRBenchError
from qra_bench.memory import MemoryModel
from qra_bench.space import QRConfig, SearchSpace

__all__ = ["FeatureEncoder"]

GIB = float(2**30)


def _priors(values: Sequence[float] | np.ndarray | None, n_blocks: int, what: str) -> np.ndarray:
    if values is None:
        return np.zeros(n_blocks)
    arr = np.asarray(values, dtype=float)
    if arr.shape != (n_blocks,) or not np.all(np.isfinite(arr)):
        raise QRBenchError(f"{what} must be {n_blocks} finite numbers (one per block), got shape {arr.shape}")
    return arr


class FeatureEncoder:
    """Turns configurations (as rung indices) into the surrogate's feature matrix.

    Parameters
    ----------
    space
        The ladders; rung indices refer to them.
    memory_model
        Gives the ``mem_gib`` feature (``total_bytes_batch``); its space must have the same ladders.
    importance_q, importance_r
        Per-block priors in [0, 1] (default: zeros, which makes ``iq_bits`` and ``ir_rank`` constant).
    memory_offset
        Bytes added to every memory value, so the feature matches a table whose recorded memory differs from
        ``memory_model`` by a configuration-independent term (e.g. activations of another sequence length).
    include_fidelity
        Append ``fidelity_frac`` as the last feature.
    """

    def __init__(
        self,
        space: SearchSpace,
        memory_model: MemoryModel,
        importance_q: Sequence[float] | np.ndarray | None = None,
        importance_r: Sequence[float] | np.ndarray | None = None,
        memory_offset: int = 0,
        include_fidelity: bool = True,
    ) -> None:
        if (
            memory_model.space.bits != space.bits
            or memory_model.space.ranks != space.ranks
            or memory_model.space.n_blocks != space.n_blocks
        ):
            raise QRBenchError("the memory model's search space differs from the encoder's; build both from one space")
        self.space = space
        self.memory_model = memory_model
        L = space.n_blocks
        self.importance_q = _priors(importance_q, L, "importance_q")
        self.importance_r = _priors(importance_r, L, "importance_r")
        self.memory_offset = int(memory_offset)
        self.include_fidelity = bool(include_fidelity)
        nb, nr = len(space.bits), len(space.ranks)
        self._bits = np.asarray(space.bits, dtype=np.float64)
        self._ranks = np.asarray(space.ranks, dtype=np.float64)
        self._bit_scale = 1.0 / (nb - 1) if nb > 1 else 0.0
        self._rank_scale = 1.0 / (nr - 1) if nr > 1 else 0.0
        # Popcount of every rung bitmask: coverage is popcount(OR of 1 << rung) / rungs, without (n, L, rungs) temporaries.
        self._popcount_b = np.array([bin(m).count("1") / nb for m in range(1 << nb)]) if nb <= 16 else None
        self._popcount_r = np.array([bin(m).count("1") / nr for m in range(1 << nr)]) if nr <= 16 else None
        # Per-(block, rung) tables flattened to one axis, so each feature is one np.take on ``rung + block * rungs``
        # and one row sum: the cheapest numpy form (a (n, L, k) gather and 3-d sum is several times slower).
        nbl = np.arange(L)
        self._bit_offset = (nbl * nb)[None, :]
        self._rank_offset = (nbl * nr)[None, :]
        self._bits_flat = np.tile(self._bits / L, L)  # mean = sum of value / L
        self._ranks_flat = np.tile(self._ranks / L, L)
        self._iq_flat = (self.importance_q[:, None] * self._bits[None, :] / L).ravel()
        self._ir_flat = (self.importance_r[:, None] * self._ranks[None, :] / L).ravel()
        self._bit_mem_flat = (memory_model.bit_cost.astype(np.float64) / GIB).ravel()
        self._rank_mem_flat = (memory_model.rank_cost.astype(np.float64) / GIB).ravel()
        self._mem_const = (memory_model.constant + self.memory_offset) / GIB

    @property
    def feature_names(self) -> list[str]:
        L = self.space.n_blocks
        names = [f"bits_{l}" for l in range(L)] + [f"rank_{l}" for l in range(L)]
        names += ["avg_bits", "avg_rank", "mem_gib", "bit_coverage", "rank_coverage", "iq_bits", "ir_rank"]
        if self.include_fidelity:
            names.append("fidelity_frac")
        return names

    @property
    def n_features(self) -> int:
        return 2 * self.space.n_blocks + 7 + int(self.include_fidelity)

    def _coverage(self, idx: np.ndarray, popcount: np.ndarray | None, n_rungs: int) -> np.ndarray:
        if popcount is None:  # very long ladders: fall back to the one-hot form
            return np.eye(n_rungs, dtype=bool)[idx].any(axis=1).sum(axis=1) / n_rungs
        mask = np.bitwise_or.reduce(np.left_shift(1, idx), axis=1)
        return popcount[mask]

    def transform(
        self, bit_idx: np.ndarray, rank_idx: np.ndarray, fidelity_frac: float | np.ndarray = 1.0
    ) -> np.ndarray:
        """Features of ``n`` configurations given as rung indices of shape (n, L); float64 array (n, d).

        ``fidelity_frac`` is one fraction for all rows or one per row (ignored unless ``include_fidelity``).
        Indices are trusted (no range check): the search produces them from the same ladders.
        """
        bi = np.atleast_2d(np.asarray(bit_idx, dtype=np.intp))
        ri = np.atleast_2d(np.asarray(rank_idx, dtype=np.intp))
        n, L = bi.shape
        if L != self.space.n_blocks or ri.shape != bi.shape:
            raise QRBenchError(
                f"rung indices must have shape (n, {self.space.n_blocks}), got {bi.shape} and {ri.shape}"
            )
        out = np.empty((n, self.n_features), dtype=np.float64)
        np.multiply(bi, self._bit_scale, out=out[:, :L])
        np.multiply(ri, self._rank_scale, out=out[:, L : 2 * L])
        c = 2 * L
        fb = bi + self._bit_offset
        fr = ri + self._rank_offset
        out[:, c] = np.take(self._bits_flat, fb).sum(axis=1)
        out[:, c + 1] = np.take(self._ranks_flat, fr).sum(axis=1)
        out[:, c + 2] = np.take(self._bit_mem_flat, fb).sum(axis=1)
        out[:, c + 2] += np.take(self._rank_mem_flat, fr).sum(axis=1)
        out[:, c + 2] += self._mem_const
        out[:, c + 3] = self._coverage(bi, self._popcount_b, len(self.space.bits))
        out[:, c + 4] = self._coverage(ri, self._popcount_r, len(self.space.ranks))
        out[:, c + 5] = np.take(self._iq_flat, fb).sum(axis=1)
        out[:, c + 6] = np.take(self._ir_flat, fr).sum(axis=1)
        if self.include_fidelity:
            out[:, c + 7] = fidelity_frac
        return out

    def indices(self, configs: Sequence[QRConfig]) -> tuple[np.ndarray, np.ndarray]:
        """Rung indices ``(bit_idx, rank_idx)`` of shape (n, L); raises naming a value off the ladders."""
        if len(configs) == 0:
            L = self.space.n_blocks
            return np.zeros((0, L), dtype=np.int64), np.zeros((0, L), dtype=np.int64)
        return (
            np.stack([self.space.bit_index(c) for c in configs]),
            np.stack([self.space.rank_index(c) for c in configs]),
        )

    def transform_configs(self, configs: Sequence[QRConfig], fidelity_frac: float | np.ndarray = 1.0) -> np.ndarray:
        """:meth:`transform` of validated configurations."""
        bi, ri = self.indices(configs)
        return self.transform(bi, ri, fidelity_frac)

    def memory_bytes(self, bit_idx: np.ndarray, rank_idx: np.ndarray) -> np.ndarray:
        """Total memory (bytes, int64) as the ``mem_gib`` feature counts it, offset included."""
        return self.memory_model.total_bytes_batch(bit_idx, rank_idx) + self.memory_offset
