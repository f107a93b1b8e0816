"""Stage 2: SMAC3 ask/tell drives a trust region of repaired neighbours; radius schedule, EI, stopping."""

import numpy as np
import pytest
from scipy.stats import norm

from qra_bench.search import TrustRegionBO

pytestmark = pytest.mark.filterwarnings("ignore:Please use `dict\\(config\\)`:DeprecationWarning")


def _bo(problem, budget="uniform-4bit", **kw):
    start = kw.pop("start", [(problem.space.uniform(4, 8), 0.5)])
    return TrustRegionBO(
        problem.space,
        problem.mm,
        problem.budget(budget),
        0,
        priors=problem.priors,
        predictor=problem.standin,
        start=start,
        **kw,
    )


def test_radius_grows_after_success_and_shrinks_after_failure(tiny):
    bo = _bo(tiny, radius=2, min_radius=1, max_radius=4, success_tolerance=1, failure_tolerance=1)
    cfg = bo.ask()
    bo.tell(cfg, 0.9)  # better than the start's 0.5: success
    assert bo.radius == 4
    cfg = bo.ask()
    bo.tell(cfg, 1.0)  # success again, but capped
    assert bo.radius == 4
    cfg = bo.ask()
    bo.tell(cfg, 0.1)  # failure
    assert bo.radius == 2
    for _ in range(3):
        cfg = bo.ask()
        bo.tell(cfg, 0.1)
    assert bo.radius == 1  # floored at min_radius
    assert bo.radius_history == [2, 4, 4, 2, 1, 1, 1]


def test_failure_tolerance_counts_consecutive_failures(tiny):
    bo = _bo(tiny, radius=4, failure_tolerance=2)
    for value, radius in [(0.1, 4), (0.1, 2), (0.1, 2), (0.9, 4), (0.1, 4), (0.1, 2)]:
        cfg = bo.ask()
        bo.tell(cfg, value)
        assert bo.radius == radius


def test_region_is_the_neighbourhood_within_the_radius_when_nothing_needs_repair(tiny):
    # fp16-lora admits every configuration of the ladders, so no candidate is repaired.
    center = tiny.space.uniform(4, 8)
    bo = _bo(tiny, budget="fp16-lora", radius=1, start=[(center, 0.5)])
    bi, ri = bo.region_candidates()
    got = {tiny.space.from_indices(b, r) for b, r in zip(bi, ri)}
    assert got == set(tiny.space.neighbours(center))
    bo.radius = 3
    bi, ri = bo.region_candidates()
    cands = [tiny.space.from_indices(b, r) for b, r in zip(bi, ri)]
    assert cands and all(1 <= tiny.space.distance(center, c) <= 3 for c in cands)
    assert any(tiny.space.distance(center, c) >= 2 for c in cands)


def test_region_candidates_are_repaired_feasible_and_new(llama):
    budget = llama.budget("uniform-4bit")
    bo = _bo(llama, radius=4, start=[(llama.space.uniform(4, 16), 0.5)])
    asked = []
    for _ in range(3):
        cfg = bo.ask()
        asked.append(cfg)
        bo.tell(cfg, llama.standin.quality(cfg))
    bi, ri = bo.region_candidates()
    assert len(bi) > 0
    assert np.all(llama.mm.total_bytes_batch(bi, ri) <= budget.bytes)
    cands = {llama.space.from_indices(b, r) for b, r in zip(bi, ri)}
    assert not cands & set(asked) and llama.space.uniform(4, 16) not in cands


def test_ask_is_the_expected_improvement_argmax_over_the_region(tiny):
    center = tiny.space.uniform(4, 8)
    m0, _ = tiny.standin(tiny.space.bit_index(center)[None], tiny.space.rank_index(center)[None])
    bo = _bo(tiny, budget="fp16-lora", radius=1, start=[(center, float(m0[0]))])
    cfg = bo.ask()
    nbrs = tiny.space.neighbours(center)
    bi = np.stack([tiny.space.bit_index(c) for c in nbrs])
    ri = np.stack([tiny.space.rank_index(c) for c in nbrs])
    mean, std = tiny.standin(bi, ri)
    z = (mean - m0[0]) / std
    ei = (mean - m0[0]) * norm.cdf(z) + std * norm.pdf(z)
    assert cfg == nbrs[int(np.argmax(ei))]
    assert bo.last_max_ei == pytest.approx(float(ei.max()), rel=1e-6)


def test_stops_when_expected_improvement_vanishes(tiny):
    def flat(bi, ri):  # nothing can beat the start and the model is sure of it
        return np.zeros(len(bi)), np.full(len(bi), 1e-6)

    bo = TrustRegionBO(
        tiny.space, tiny.mm, tiny.budget("uniform-4bit"), 0, predictor=flat, start=[(tiny.space.uniform(4, 8), 0.0)]
    )
    bo.ask()
    assert bo.last_max_ei < 1e-4 and bo.converged and bo.should_stop


def test_stops_when_the_budget_admits_one_configuration(tiny):
    smallest = tiny.space.min_config()
    bo = TrustRegionBO(
        tiny.space,
        tiny.mm,
        int(tiny.mm.total_bytes(smallest)),
        0,
        predictor=tiny.standin,
        start=[(smallest, tiny.standin.quality(smallest))],
    )
    assert bo.ask() == smallest
    assert bo.converged and bo.should_stop


def test_stops_after_max_evals_and_smac_runhistory_holds_every_result(tiny):
    bo = _bo(tiny, max_evals=4)
    n = 0
    while not bo.should_stop:
        cfg = bo.ask()
        bo.tell(cfg, tiny.standin.quality(cfg))
        n += 1
    assert n == 4 and bo.n_evals == 4
    assert len(bo.smac.runhistory) == 5  # the start value told to SMAC3 plus four asks


def test_default_start_is_asked_first_without_a_predictor(tiny):
    bo = TrustRegionBO(tiny.space, tiny.mm, tiny.budget("uniform-4bit"), 0, priors=tiny.priors)
    first = [bo.ask() for _ in range(2)]
    assert tiny.space.uniform(4, 16) in first  # the budget's reference configuration
    for cfg in first:
        bo.tell(cfg, tiny.standin.quality(cfg))
    cfg = bo.ask()  # now EI from the LinearPredictor fitted to the two results
    assert tiny.mm.is_feasible(cfg, tiny.budget("uniform-4bit")) and cfg not in first


def test_a_biased_predictor_learns_from_the_told_results(tiny):
    def biased(b, r):  # the stand-in, wrongly sure that block 0's bits matter a lot
        m, s = tiny.standin(b, r)
        return m + 0.05 * np.asarray(b)[:, 0], s

    fixed = TrustRegionBO(
        tiny.space, tiny.mm, tiny.budget("uniform-4bit"), 0, priors=tiny.priors, predictor=biased, correct=False
    )
    bo = TrustRegionBO(tiny.space, tiny.mm, tiny.budget("uniform-4bit"), 0, priors=tiny.priors, predictor=biased)
    told = []
    for _ in range(12):
        cfg = bo.ask()
        bo.tell(cfg, tiny.standin.quality(cfg))
        told.append(cfg)
    bi, ri = bo.ctx.indices_batch(told)
    truth = np.asarray([tiny.standin.quality(c) for c in told])
    assert np.abs(bo.predict(bi, ri)[0] - truth).mean() < 0.5 * np.abs(fixed.predict(bi, ri)[0] - truth).mean()
