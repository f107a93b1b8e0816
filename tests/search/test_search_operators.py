"""Stage-1 operators: the warm-start formula, one atomic edit, importance weighting, repair after every operator."""

import numpy as np
import pytest

from qra_bench.search import SearchContext
from qra_bench.search.base import Priors
from qra_bench.search.operators import (
    apply_operator,
    atomic_edit,
    atomic_edit_raw,
    block_weights,
    coupled_mutation,
    crossover,
    fill_budget,
    importance_mutation,
    jitter,
    snap,
    warm_start,
)

CASES = [("tiny", "uniform-4bit"), ("tiny", "uniform-3bit"), ("llama", "uniform-4bit"), ("llama", "0.5xfp16-lora")]


@pytest.fixture(params=CASES, ids=["-".join(c) for c in CASES])
def ctx(request):
    problem = request.getfixturevalue(request.param[0])
    return SearchContext.build(problem.space, problem.mm, problem.budget(request.param[1]), problem.priors)


def test_snap_picks_the_nearest_rung_and_the_lower_one_on_ties():
    values = np.array([2.0, 2.4, 2.5, 5.9, 6.0, 6.1, 12.1, 15.0])
    assert snap(values, (2, 3, 4, 8, 16)).tolist() == [0, 0, 0, 2, 2, 3, 4, 4]


def test_warm_start_follows_the_method_formula_when_the_budget_is_loose(tiny):
    # fp16-lora is the largest budget; the warm start of the priors must fit it unrepaired.
    ctx = SearchContext.build(tiny.space, tiny.mm, tiny.budget("fp16-lora"), tiny.priors)
    cfg = warm_start(ctx)
    iq, ir = np.asarray(tiny.priors.importance_q), np.asarray(tiny.priors.importance_r)
    q = 2 + (16 - 2) * iq
    r = 4 + (16 - 4) * ir
    expect_b = [min((2, 3, 4, 8, 16), key=lambda b: (abs(b - x), b)) for x in q]
    expect_r = [min((4, 8, 16), key=lambda v: (abs(v - x), v)) for x in r]
    assert list(cfg.bits) == expect_b and list(cfg.ranks) == expect_r
    assert cfg.bits[0] == 16  # block 0 is the most bit-sensitive block of the stand-in


def test_warm_start_is_repaired_when_over_budget(ctx):
    assert ctx.is_feasible(warm_start(ctx))


def test_atomic_edit_is_one_edit_before_repair(ctx):
    rng = np.random.default_rng(0)
    cfg = warm_start(ctx)
    for _ in range(50):
        raw = atomic_edit_raw(cfg, ctx.space, rng)
        assert ctx.space.distance(cfg, raw) == 1
        assert raw in ctx.space.neighbours(cfg)
        cfg = atomic_edit(cfg, ctx, rng)
        assert ctx.is_feasible(cfg)


@pytest.mark.parametrize("kind", ["atomic", "importance", "coupled", "crossover"])
def test_every_operator_returns_a_feasible_configuration(kind, ctx):
    rng = np.random.default_rng(1)
    pop = [warm_start(ctx)] + [jitter(warm_start(ctx), ctx, rng) for _ in range(5)]
    for i in range(40):
        child = apply_operator(kind, [pop[i % len(pop)], pop[(i * 3 + 1) % len(pop)]], ctx, rng)
        ctx.space.validate(child)
        assert ctx.is_feasible(child)
        pop.append(child)


def test_jitter_and_fill_are_feasible(ctx):
    rng = np.random.default_rng(2)
    for _ in range(20):
        cfg = jitter(ctx.space.max_config(), ctx, rng, n_edits=3)
        assert ctx.is_feasible(cfg)
        assert ctx.is_feasible(fill_budget(cfg, ctx))


def test_fill_budget_leaves_no_upgrade_that_fits(ctx):
    cfg = fill_budget(ctx.space.min_config(), ctx)
    assert ctx.is_feasible(cfg)
    for nb in ctx.space.neighbours(cfg):
        raised = sum(nb.bits) + sum(nb.ranks) > sum(cfg.bits) + sum(cfg.ranks)
        if raised and ctx.memory_bytes(nb) > ctx.memory_bytes(cfg):
            assert not ctx.is_feasible(nb), f"{nb} still fits"


def test_importance_mutation_prefers_important_blocks(llama):
    # Block 3 alone matters: it should be picked (almost) every time, and moved up (I = 1).
    L = llama.space.n_blocks
    iq = np.zeros(L)
    iq[3] = 1.0
    ctx = SearchContext.build(llama.space, llama.mm, llama.budget("fp16-lora"), Priors(tuple(iq), tuple(np.zeros(L))))
    assert block_weights(ctx)[3] > 0.9
    rng = np.random.default_rng(0)
    base = llama.space.uniform(4, 8)
    moved_up = 0
    for _ in range(200):
        child = importance_mutation(base, ctx, rng)
        diff = [l for l in range(L) if child.bits[l] != base.bits[l] or child.ranks[l] != base.ranks[l]]
        if diff == [3] and child.bits[3] > base.bits[3]:
            moved_up += 1
    assert moved_up > 150


def test_coupled_mutation_raises_the_important_block_and_repair_pays_elsewhere(llama):
    L = llama.space.n_blocks
    iq = np.zeros(L)
    iq[5] = 1.0
    ctx = SearchContext.build(
        llama.space, llama.mm, llama.budget("uniform-4bit"), Priors(tuple(iq), tuple(np.zeros(L)))
    )
    rng = np.random.default_rng(3)
    base = llama.space.uniform(4, 16)  # exactly on the budget: every raise must be paid for by repair
    kept = 0
    for _ in range(50):
        child = coupled_mutation(base, ctx, rng)
        assert ctx.is_feasible(child)
        if child.bits[5] > 4:
            kept += 1
            assert any(child.bits[l] < 4 or child.ranks[l] < 16 for l in range(L) if l != 5)
    assert kept >= 45


def test_crossover_takes_each_block_pair_from_a_parent_when_nothing_needs_repair(tiny):
    ctx = SearchContext.build(tiny.space, tiny.mm, tiny.budget("fp16-lora"), tiny.priors)
    rng = np.random.default_rng(4)
    a, b = tiny.space.uniform(2, 4), tiny.space.uniform(8, 16)
    child = crossover(a, b, ctx, rng)
    assert all((q, r) in ((2, 4), (8, 16)) for q, r in zip(child.bits, child.ranks))
