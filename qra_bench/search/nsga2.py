"""Constrained NSGA-II selection and the 2-D hypervolume (all objectives minimized).

Stage 1 selects on ``(-quality, memory)``. Constraint handling follows Deb's rule: a feasible point dominates
every infeasible one, and of two infeasible points the one with the smaller violation (bytes over budget)
dominates. Ties are broken by index everywhere, so selection is deterministic.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["crowding_distance", "dominance_matrix", "hypervolume_2d", "non_dominated_sort", "pareto_mask", "select"]


def dominance_matrix(F: np.ndarray, violation: Optional[np.ndarray] = None) -> np.ndarray:
    """``D[i, j]`` is True when point ``i`` constrained-dominates point ``j``; ``F`` is (n, m), minimized."""
    F = np.asarray(F, dtype=float)
    n = F.shape[0]
    v = np.zeros(n) if violation is None else np.maximum(np.asarray(violation, dtype=float), 0.0)
    le = np.all(F[:, None, :] <= F[None, :, :], axis=2)
    lt = np.any(F[:, None, :] < F[None, :, :], axis=2)
    pareto = le & lt
    feas = v == 0
    both_feasible = feas[:, None] & feas[None, :]
    feasible_vs_not = feas[:, None] & ~feas[None, :]
    both_infeasible = ~feas[:, None] & ~feas[None, :]
    return (both_feasible & pareto) | feasible_vs_not | (both_infeasible & (v[:, None] < v[None, :]))


def non_dominated_sort(F: np.ndarray, violation: Optional[np.ndarray] = None) -> np.ndarray:
    """Front index of every point (0 = non-dominated) under constrained domination."""
    D = dominance_matrix(F, violation)
    n = D.shape[0]
    n_dominators = D.sum(axis=0)
    rank = np.full(n, -1, dtype=np.int64)
    front = np.flatnonzero(n_dominators == 0)
    r = 0
    while front.size:
        rank[front] = r
        n_dominators = n_dominators - D[front].sum(axis=0)
        n_dominators[rank >= 0] = -1  # already ranked; never again 0
        front = np.flatnonzero(n_dominators == 0)
        r += 1
    return rank


def crowding_distance(F: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of the points of one front; boundary points get ``inf``."""
    F = np.asarray(F, dtype=float)
    n, m = F.shape
    d = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(m):
        order = np.argsort(F[:, k], kind="stable")
        span = F[order[-1], k] - F[order[0], k]
        d[order[0]] = d[order[-1]] = np.inf
        if span > 0:
            d[order[1:-1]] += (F[order[2:], k] - F[order[:-2], k]) / span
    return d


def select(F: np.ndarray, k: int, violation: Optional[np.ndarray] = None) -> np.ndarray:
    """Indices of the ``k`` survivors: whole fronts in order, the last one cut by descending crowding distance."""
    F = np.asarray(F, dtype=float)
    n = F.shape[0]
    if k >= n:
        return np.arange(n)
    rank = non_dominated_sort(F, violation)
    crowd = np.zeros(n)
    for r in np.unique(rank):
        members = np.flatnonzero(rank == r)
        crowd[members] = crowding_distance(F[members])
    # lexsort: last key is primary. Rank ascending, crowding descending, index ascending.
    order = np.lexsort((np.arange(n), -crowd, rank))
    return np.sort(order[:k])


def pareto_mask(F: np.ndarray, violation: Optional[np.ndarray] = None) -> np.ndarray:
    """True for the points of the first (constrained) front."""
    return non_dominated_sort(F, violation) == 0


def hypervolume_2d(F: np.ndarray, ref: np.ndarray) -> float:
    """Area dominated by the points of ``F`` (n, 2), minimized, and bounded by the reference point ``ref``.

    Points that do not strictly dominate ``ref`` contribute nothing.
    """
    F = np.asarray(F, dtype=float).reshape(-1, 2)
    ref = np.asarray(ref, dtype=float)
    F = F[np.all(F < ref, axis=1)]
    if F.size == 0:
        return 0.0
    F = F[np.lexsort((F[:, 1], F[:, 0]))]  # by f0, then f1
    hv, best_f1 = 0.0, ref[1]
    for f0, f1 in F:
        if f1 < best_f1:
            hv += (ref[0] - f0) * (best_f1 - f1)
            best_f1 = f1
    return float(hv)
