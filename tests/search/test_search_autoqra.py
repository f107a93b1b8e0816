"""The AutoQRA loop against the analytic stand-in (a test fixture, not a result): feasibility, determinism,
real-evaluation accounting, the bits-only / rank-only variants, and a win over random search at equal cost."""

import numpy as np
import pytest

from qra_bench.search import AutoQRASettings, EvolutionSettings, autoqra_search, evolve, make_optimizer

pytestmark = pytest.mark.filterwarnings("ignore:Please use `dict\\(config\\)`:DeprecationWarning")

# Smaller than the defaults so that the suite stays fast; the benchmark runs the defaults.
FAST = AutoQRASettings(evolution=EvolutionSettings(generations=6), stage2_evals=10)
# For tests of bookkeeping rather than of search quality.
SMOKE = AutoQRASettings(
    evolution=EvolutionSettings(population=16, offspring=32, top_k=8, generations=3), stage2_evals=6
)


def _random_search_best(problem, budget, n_rows, seed):
    """Best stand-in quality among ``n_rows`` repaired random configurations (the random baseline's asks)."""
    opt = make_optimizer("random", problem.space, problem.mm, budget, seed)
    cfgs = [opt.ask() for _ in range(n_rows)]
    bi = np.stack([problem.space.bit_index(c) for c in cfgs])
    ri = np.stack([problem.space.rank_index(c) for c in cfgs])
    return float(problem.standin(bi, ri)[0].max())


@pytest.mark.parametrize(
    "case",
    [("llama", "uniform-4bit", 0), ("llama", "0.5xfp16-lora", 1), ("tiny", "uniform-3bit", 2)],
    ids=lambda c: f"{c[0]}-{c[1]}-seed{c[2]}",
)
def test_autoqra_beats_random_search_at_equal_predictor_calls(case, request):
    problem = request.getfixturevalue(case[0])
    budget = problem.budget(case[1])
    res = autoqra_search(
        problem.space, problem.mm, budget, problem.standin, problem.priors, seed=case[2], settings=FAST
    )
    assert problem.mm.is_feasible(res.incumbent, budget)
    ours = problem.standin.quality(res.incumbent)
    assert ours == pytest.approx(res.predicted_mean)
    assert ours > _random_search_best(problem, budget, res.n_predictor_rows, seed=case[2])


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_autoqra_beats_random_search_with_default_settings(seed, llama):
    budget = llama.budget("uniform-4bit")
    res = autoqra_search(llama.space, llama.mm, budget, llama.standin, llama.priors, seed=seed)
    assert llama.standin.quality(res.incumbent) > _random_search_best(llama, budget, res.n_predictor_rows, seed)


def test_result_is_feasible_itemized_and_deterministic(tiny):
    budget = tiny.budget("uniform-4bit")
    a = autoqra_search(tiny.space, tiny.mm, budget, tiny.standin, tiny.priors, seed=5, settings=SMOKE)
    b = autoqra_search(tiny.space, tiny.mm, budget, tiny.standin, tiny.priors, seed=5, settings=SMOKE)
    assert a.incumbent == b.incumbent and a.history == b.history and a.candidates == b.candidates
    assert a.memory.total <= budget.bytes and a.memory.config == a.incumbent
    assert all(tiny.mm.is_feasible(r.config, budget) for r in a.history)
    assert all(c.memory_bytes <= budget.bytes for c in a.candidates)
    means = [c.predicted_mean for c in a.candidates]
    assert means == sorted(means, reverse=True) and a.candidates[0].config == a.incumbent
    assert {r.stage for r in a.history} == {"stage1", "stage2"}
    assert a.measured is None and a.n_real_evals == 0


def test_real_evaluations_are_spent_exactly_and_refit_after_each_batch(tiny):
    budget = tiny.budget("uniform-4bit")
    batches, refits = [], []

    def real_eval(cfgs):
        batches.append(list(cfgs))
        return [tiny.standin.quality(c) - 0.01 for c in cfgs]  # "real" differs from the predictor

    def refit():
        refits.append(len(batches))
        return tiny.standin

    res = autoqra_search(
        tiny.space,
        tiny.mm,
        budget,
        tiny.standin,
        tiny.priors,
        seed=0,
        real_eval=real_eval,
        real_evals=5,
        refit=refit,
        settings=SMOKE,
    )
    sizes = [len(b) for b in batches]
    assert sum(sizes) == res.n_real_evals
    assert res.stopped_by == "max_ei" or res.n_real_evals == 5
    assert sizes[0] == 1 and all(s == 1 for s in sizes[1:])  # K // 3 = 1 initial configuration, then one by one
    assert refits == list(range(1, len(batches) + 1))
    evaluated = [c for b in batches for c in b]
    assert len(set(evaluated)) == len(evaluated) and all(tiny.mm.is_feasible(c, budget) for c in evaluated)
    best = max(evaluated, key=tiny.standin.quality)
    assert res.incumbent == best and res.measured == pytest.approx(tiny.standin.quality(best) - 0.01)
    assert [r.stage for r in res.history if r.measured is not None] == ["real"] * len(evaluated)


def test_stops_when_no_neighbour_promises_improvement(tiny):
    def flat(bi, ri):
        return np.zeros(len(bi)), np.full(len(bi), 1e-6)

    res = autoqra_search(tiny.space, tiny.mm, tiny.budget("uniform-4bit"), flat, tiny.priors, seed=0, settings=SMOKE)
    assert res.stopped_by == "max_ei"


@pytest.mark.parametrize("axes, fixed", [("bits", "ranks"), ("ranks", "bits")])
def test_one_axis_variants_keep_the_other_axis_fixed(axes, fixed, llama):
    budget = llama.budget("uniform-4bit")
    res = autoqra_search(llama.space, llama.mm, budget, llama.standin, llama.priors, seed=0, axes=axes, settings=SMOKE)
    for r in res.history:
        assert len(set(getattr(r.config, fixed))) == 1
        assert llama.mm.is_feasible(r.config, budget)
    assert set(getattr(res.incumbent, fixed)) == ({16} if fixed == "ranks" else {4})


def test_evolve_hypervolume_never_falls_and_archive_is_feasible(llama):
    budget = llama.budget("0.5xfp16-lora")
    res = evolve(
        llama.standin, llama.space, llama.mm, budget, llama.priors, seed=0, settings=EvolutionSettings(generations=5)
    )
    assert all(b >= a - 1e-15 for a, b in zip(res.hypervolume, res.hypervolume[1:]))
    assert all(e.memory_bytes <= budget.bytes for e in res.archive)
    assert len({e.config for e in res.archive}) == len(res.archive)
    assert res.best.quality == max(e.quality for e in res.pareto)


def test_evolve_stops_early_when_hypervolume_stalls(tiny):
    res = evolve(
        tiny.standin,
        tiny.space,
        tiny.mm,
        tiny.budget("uniform-4bit"),
        tiny.priors,
        seed=0,
        settings=EvolutionSettings(generations=12, patience=1, hv_tol=10.0),
    )
    assert res.stopped_early and res.generations_run == 1


def test_low_fidelity_trials_rerank_the_predictor_shortlist(tiny):
    calls = []

    def low_fidelity(cfgs):
        calls.append(len(cfgs))
        return [tiny.standin.quality(c) - 0.05 for c in cfgs]

    settings = EvolutionSettings(population=16, offspring=32, top_k=4, shortlist=10, generations=3)
    res = evolve(
        tiny.standin,
        tiny.space,
        tiny.mm,
        tiny.budget("uniform-4bit"),
        tiny.priors,
        seed=0,
        settings=settings,
        low_fidelity=low_fidelity,
    )
    assert calls and all(n <= 10 for n in calls) and calls[0] == 10
    assert all(e.source == "low_fidelity" for e in res.archive)
    assert all(len([e for e in res.archive if e.generation == g]) <= 4 for g in range(4))
    assert all(e.quality == pytest.approx(tiny.standin.quality(e.config) - 0.05) for e in res.archive)


def test_evolution_without_a_model_starts_with_a_space_filling_generation(tiny):
    from qra_bench.search import EvolutionOptimizer

    opt = EvolutionOptimizer(tiny.space, tiny.mm, tiny.budget("uniform-4bit"), 0, priors=tiny.priors)
    asks = [opt.ask() for _ in range(opt.settings.top_k)]
    assert len(set(asks)) == len(asks) and all(opt.ctx.is_feasible(c) for c in asks)
    mean_rank_rung = [float(np.mean(opt.ctx.indices(c)[1])) for c in asks]
    # both ends of the bits-for-rank trade are asked before any model exists
    assert max(mean_rank_rung) - min(mean_rank_rung) >= 1.0


def test_evolution_refits_its_gp_only_on_new_results_and_reestimates_the_kernel_every_few(tiny):
    from qra_bench.search import EvolutionOptimizer
    from qra_bench.search.predictors import GP_REFIT_EVERY

    opt = EvolutionOptimizer(tiny.space, tiny.mm, tiny.budget("uniform-4bit"), 0, priors=tiny.priors)
    kernels = []
    for _ in range(2 * GP_REFIT_EVERY + 2):
        cfg = opt.ask()
        opt.tell(cfg, tiny.standin.quality(cfg))
        probe = [opt.ask()]
        opt._screen(probe)
        gp = opt._gp
        opt._screen(probe)
        assert opt._gp is gp or gp is None  # no refit without a new result
        kernels.append(None if gp is None else str(gp.kernel_))
        opt.tell(probe[0], tiny.standin.quality(probe[0]))
    fitted = [k for k in kernels if k is not None]
    # hyper-parameters change only when they are re-estimated, so there are far fewer kernels than fits
    assert len(fitted) >= GP_REFIT_EVERY and len(set(fitted)) < len(fitted)
