"""Variation operators of Stage 1 (``docs/algorithm.md``), each followed by :meth:`SearchContext.repair`.

- :func:`warm_start`: ``q_l = snap(q_min + (q_max - q_min) I_q(l))``, ``r_l = snap(r_min + (r_max - r_min) I_r(l))``
  (nearest rung by value; ties go to the lower rung), then repair.
- :func:`fill_budget`: the reverse of repair, an addition of ours: while some one-rung upgrade still fits,
  apply the one with the largest ``(importance + 1e-3) / bytes added``. The paper's warm start only ever
  repairs downwards, so with low priors it starts far below the budget and spends generations climbing back.
- :func:`jitter`: a few random reassignments (any rung) of random blocks.
- :func:`atomic_edit`: one block's bits or rank moved one rung.
- :func:`importance_mutation`: block drawn with probability proportional to ``(I_q + I_r)^1.5``, axis with
  probability proportional to its importance, one rung up with probability ``I`` (of that axis), else down.
- :func:`coupled_mutation`: one memory-increasing step on an important block; the repair that follows pays for
  it by lowering the least important rungs (budget-balanced).
- :func:`crossover`: per-block uniform crossover; a block's (bits, rank) pair travels together.

Every operator returns a feasible configuration. A one-rung ladder (the bits-only and rank-only variants fix an
axis that way) is never moved.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from qra_bench.space import QRConfig, SearchSpace
from qra_bench.search.base import SearchContext

__all__ = [
    "OPERATORS",
    "apply_operator",
    "atomic_edit",
    "atomic_edit_raw",
    "block_weights",
    "coupled_mutation",
    "crossover",
    "fill_budget",
    "importance_mutation",
    "jitter",
    "snap",
    "warm_start",
]

#: Offspring operators in the order :func:`apply_operator` cycles through them.
OPERATORS: tuple[str, ...] = ("atomic", "importance", "coupled", "crossover")
_EPS = 1e-3  # keeps zero-importance blocks and axes reachable, just rarely


def snap(values: np.ndarray, ladder: Sequence[int]) -> np.ndarray:
    """Index of the ladder rung nearest to each value (ties go to the lower rung)."""
    lad = np.asarray(ladder, dtype=float)
    return np.argmin(np.abs(np.asarray(values, dtype=float)[:, None] - lad[None, :]), axis=1).astype(np.int64)


def block_weights(ctx: SearchContext) -> np.ndarray:
    """Probability of picking each block in importance-guided moves: ``(I_q + I_r)^1.5``, normalized."""
    w = (ctx.importance_q + ctx.importance_r) ** 1.5 + _EPS
    return w / w.sum()


def _n_rungs(space: SearchSpace) -> tuple[int, int]:
    return len(space.bits), len(space.ranks)


def warm_start(ctx: SearchContext) -> QRConfig:
    """The importance-prior configuration, repaired to the budget (all middle rungs' value if no priors)."""
    s = ctx.space
    q = s.bits[0] + (s.bits[-1] - s.bits[0]) * ctx.importance_q
    r = s.ranks[0] + (s.ranks[-1] - s.ranks[0]) * ctx.importance_r
    return ctx.repair(s.from_indices(snap(q, s.bits), snap(r, s.ranks)))


def fill_budget(cfg: QRConfig, ctx: SearchContext) -> QRConfig:
    """Greedily raise rungs while the configuration stays within the budget (see module docstring).

    Deterministic; ties go to the lower block, then bits before rank. Upgrades that add no bytes are skipped
    (they would never stop). Returns ``cfg`` repaired first if it was over budget.
    """
    mm, space = ctx.memory_model, ctx.space
    cfg = ctx.repair(cfg)
    bi, ri = ctx.indices(cfg)
    nb, nr = _n_rungs(space)
    ar = np.arange(ctx.n_blocks)
    imp = np.stack([ctx.importance_q, ctx.importance_r], axis=1) + _EPS
    slack = ctx.budget_bytes - int(mm.total_bytes_batch(bi, ri)[0])
    while True:
        added = np.stack(
            [
                mm.bit_cost[ar, np.minimum(bi + 1, nb - 1)] - mm.bit_cost[ar, bi],
                mm.rank_cost[ar, np.minimum(ri + 1, nr - 1)] - mm.rank_cost[ar, ri],
            ],
            axis=1,
        )
        ok = np.stack([bi < nb - 1, ri < nr - 1], axis=1) & (added > 0) & (added <= slack)
        if not ok.any():
            break
        score = np.where(ok, imp / np.where(ok, added, 1), -np.inf)
        l, axis = divmod(int(np.argmax(score)), 2)
        slack -= int(added[l, axis])
        if axis == 0:
            bi[l] += 1
        else:
            ri[l] += 1
    out = space.from_indices(bi, ri)
    if not ctx.is_feasible(out):  # the byte bookkeeping above mirrors total_bytes; an internal error if not
        raise AssertionError(f"fill_budget left the budget: {out}")
    return out


def jitter(cfg: QRConfig, ctx: SearchContext, rng: np.random.Generator, n_edits: int | None = None) -> QRConfig:
    """``n_edits`` (default 1-3) random reassignments: a random block's bits or rank set to a random rung."""
    nb, nr = _n_rungs(ctx.space)
    bi, ri = ctx.indices(cfg)
    n = int(rng.integers(1, 4)) if n_edits is None else n_edits
    axes = [a for a, k in ((0, nb), (1, nr)) if k > 1]
    if not axes:
        return ctx.repair(cfg)
    for _ in range(n):
        l = int(rng.integers(ctx.n_blocks))
        axis = axes[int(rng.integers(len(axes)))]
        if axis == 0:
            bi[l] = int(rng.integers(nb))
        else:
            ri[l] = int(rng.integers(nr))
    return ctx.repair(ctx.space.from_indices(bi, ri))


def atomic_edit_raw(cfg: QRConfig, space: SearchSpace, rng: np.random.Generator) -> QRConfig:
    """One uniformly drawn atomic edit (one block's bits or rank one rung up or down), *not* repaired.

    Draws uniformly among :meth:`SearchSpace.neighbours` without building them all; ``cfg`` itself if the
    space has no moves (every ladder has one rung).
    """
    nb, nr = len(space.bits), len(space.ranks)
    bi, ri = space.bit_index(cfg), space.rank_index(cfg)
    # Every (block, axis, direction) that stays on the ladder.
    moves = []
    for l in range(space.n_blocks):
        for axis, idx, k in ((0, bi, nb), (1, ri, nr)):
            for step in (-1, 1):
                if 0 <= idx[l] + step < k:
                    moves.append((l, axis, step))
    if not moves:
        return cfg
    l, axis, step = moves[int(rng.integers(len(moves)))]
    if axis == 0:
        bi[l] += step
    else:
        ri[l] += step
    return space.from_indices(bi, ri)


def atomic_edit(cfg: QRConfig, ctx: SearchContext, rng: np.random.Generator) -> QRConfig:
    """:func:`atomic_edit_raw`, then repair."""
    return ctx.repair(atomic_edit_raw(cfg, ctx.space, rng))


def _pick_axis(l: int, ctx: SearchContext, rng: np.random.Generator, allowed: tuple[bool, bool]) -> int:
    w = np.array([ctx.importance_q[l] + _EPS if allowed[0] else 0.0, ctx.importance_r[l] + _EPS if allowed[1] else 0.0])
    return int(rng.choice(2, p=w / w.sum()))


def importance_mutation(cfg: QRConfig, ctx: SearchContext, rng: np.random.Generator) -> QRConfig:
    """Importance-guided one-rung move (see module docstring), then repair."""
    nb, nr = _n_rungs(ctx.space)
    if nb == 1 and nr == 1:
        return ctx.repair(cfg)
    bi, ri = ctx.indices(cfg)
    l = int(rng.choice(ctx.n_blocks, p=block_weights(ctx)))
    axis = _pick_axis(l, ctx, rng, (nb > 1, nr > 1))
    idx, k, imp = (bi, nb, ctx.importance_q[l]) if axis == 0 else (ri, nr, ctx.importance_r[l])
    step = 1 if rng.random() < imp else -1
    if not 0 <= idx[l] + step < k:
        step = -step
    idx[l] += step
    return ctx.repair(ctx.space.from_indices(bi, ri))


def coupled_mutation(cfg: QRConfig, ctx: SearchContext, rng: np.random.Generator) -> QRConfig:
    """One rung up on an important block (block and axis drawn as in :func:`importance_mutation`), then repair,
    which frees the bytes from the blocks that matter least."""
    nb, nr = _n_rungs(ctx.space)
    bi, ri = ctx.indices(cfg)
    can_up = np.stack([bi < nb - 1, ri < nr - 1], axis=1)  # (L, 2)
    if not can_up.any():
        return atomic_edit(cfg, ctx, rng)
    w = block_weights(ctx) * can_up.any(axis=1)
    l = int(rng.choice(ctx.n_blocks, p=w / w.sum()))
    axis = _pick_axis(l, ctx, rng, (bool(can_up[l, 0]), bool(can_up[l, 1])))
    if axis == 0:
        bi[l] += 1
    else:
        ri[l] += 1
    return ctx.repair(ctx.space.from_indices(bi, ri))


def crossover(a: QRConfig, b: QRConfig, ctx: SearchContext, rng: np.random.Generator) -> QRConfig:
    """Per-block uniform crossover: each block's (bits, rank) comes from ``a`` or ``b`` with probability 1/2."""
    abi, ari = ctx.indices(a)
    bbi, bri = ctx.indices(b)
    take_a = rng.random(ctx.n_blocks) < 0.5
    return ctx.repair(ctx.space.from_indices(np.where(take_a, abi, bbi), np.where(take_a, ari, bri)))


def apply_operator(kind: str, parents: Sequence[QRConfig], ctx: SearchContext, rng: np.random.Generator) -> QRConfig:
    """Apply one of :data:`OPERATORS` (crossover uses two parents, the others the first)."""
    ops: dict[str, Callable[..., QRConfig]] = {
        "atomic": lambda: atomic_edit(parents[0], ctx, rng),
        "importance": lambda: importance_mutation(parents[0], ctx, rng),
        "coupled": lambda: coupled_mutation(parents[0], ctx, rng),
        "crossover": lambda: crossover(parents[0], parents[1 % len(parents)], ctx, rng),
    }
    if kind not in ops:
        raise ValueError(f"unknown operator {kind!r}; allowed: {', '.join(OPERATORS)}")
    return ops[kind]()
