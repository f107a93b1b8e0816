"""Bits-only and rank-only search: the same search in a subspace whose other ladder has one rung.

:func:`restrict_axes` builds the subspace (and its memory model) that searches one axis with the other fixed;
:class:`Restriction` maps the subspace's rung indices back to the full ladders', so a predictor of the full
space screens the subspace unchanged. These are the ablations ``autoqra-bits-only`` and ``autoqra-ranks-only``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from qra_bench.errors import QRBenchError
from qra_bench.memory import Budget, MemoryModel
from qra_bench.search.base import SearchContext
from qra_bench.search.predictors import Predictor
from qra_bench.space import SearchSpace

__all__ = ["AXES", "Restriction", "restrict_axes"]

AXES = ("both", "bits", "ranks")


@dataclass(frozen=True)
class Restriction:
    """A subspace with one axis fixed, its memory model, and the maps back to the full ladders' indices.

    Configurations of the subspace are configurations of the full space (same values), so they are asked
    and told unchanged; only predictors need the index map (:meth:`predictor`).
    """

    space: SearchSpace
    memory_model: MemoryModel
    bit_map: np.ndarray
    rank_map: np.ndarray

    def predictor(self, full: Predictor) -> Predictor:
        def sub(bit_idx: np.ndarray, rank_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return full(self.bit_map[np.asarray(bit_idx)], self.rank_map[np.asarray(rank_idx)])

        return sub


def restrict_axes(
    space: SearchSpace,
    memory_model: MemoryModel,
    budget: "Budget | int | str",
    axes: str,
    fixed_bits: int = 4,
    fixed_rank: int = 16,
) -> Optional[Restriction]:
    """``None`` for ``axes="both"``; else the subspace searching only bits (rank fixed) or only ranks (bits
    fixed). The fixed value is ``fixed_rank``/``fixed_bits`` (or the nearest rung of the ladder), lowered
    rung by rung until the subspace's smallest configuration fits the budget."""
    if axes not in AXES:
        raise QRBenchError(f"unknown axes {axes!r}; allowed: {', '.join(AXES)}")
    if axes == "both":
        return None
    limit = SearchContext.build(space, memory_model, budget).budget_bytes
    ladder, target = (space.ranks, fixed_rank) if axes == "bits" else (space.bits, fixed_bits)
    start = int(np.argmin([abs(v - target) for v in ladder]))
    for j in range(start, -1, -1):
        if axes == "bits":
            sub = SearchSpace(space.n_blocks, bits=space.bits, ranks=(ladder[j],))
        else:
            sub = SearchSpace(space.n_blocks, bits=(ladder[j],), ranks=space.ranks)
        mm = MemoryModel(memory_model.arch, memory_model.settings, sub)
        if mm.total_bytes(sub.min_config()) <= limit:
            return Restriction(
                space=sub,
                memory_model=mm,
                bit_map=np.asarray([space.bits.index(b) for b in sub.bits], dtype=np.int64),
                rank_map=np.asarray([space.ranks.index(r) for r in sub.ranks], dtype=np.int64),
            )
    # Nothing fits at any fixed value: let SearchContext raise the usual InfeasibleBudgetError.
    SearchContext.build(space, memory_model, budget).repair(space.min_config())
    raise QRBenchError(f"no {axes}-only subspace fits the budget")  # pragma: no cover - repair raised above
