"""The optimizer protocol: observe_and_suggest, the registry and its entry points, results, predictors."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.linear_model import BayesianRidge

from qra_bench.errors import QRBenchError
from qra_bench.memory import MemoryModel
from qra_bench.search import (
    Optimizer,
    SearchContext,
    available_optimizers,
    make_optimizer,
    observe_and_suggest,
    register_optimizer,
    result_value,
)
from qra_bench.search.predictors import LinearPredictor, predictor_from_estimator
from qra_bench.search import registry as base
from qra_bench.space import SearchSpace


def test_observe_and_suggest_turns_a_function_into_a_repairing_optimizer(tiny):
    seen = []

    def greedy(observed, pending):
        seen.append((len(observed), len(pending)))
        return tiny.space.max_config()  # over any 4-bit budget: must come back repaired

    cls = observe_and_suggest(greedy)
    assert issubclass(cls, Optimizer) and cls.name == "greedy"
    budget = tiny.budget("uniform-4bit")
    opt = cls(tiny.space, tiny.mm, budget, 0)
    a = opt.ask()
    b = opt.ask()
    assert a == b == tiny.mm.repair(tiny.space.max_config(), budget)
    opt.tell(a, 0.5)
    opt.ask()
    assert seen == [(0, 0), (0, 1), (1, 1)]
    assert opt.incumbent == a and opt.incumbent_value == 0.5


def test_observe_and_suggest_passes_a_seeded_context(tiny):
    def rnd(observed, pending, ctx):
        return ctx.space.sample(ctx.rng)

    name = "test-random-fn"
    if name not in available_optimizers():
        register_optimizer(name)(observe_and_suggest(rnd, name=name))
    budget = tiny.budget("uniform-3bit")
    runs = []
    for _ in range(2):
        opt = make_optimizer(name, tiny.space, tiny.mm, budget, 11)
        runs.append([opt.ask() for _ in range(4)])
    assert runs[0] == runs[1] and all(tiny.mm.is_feasible(c, budget) for c in runs[0])


def test_registry_loads_entry_points(monkeypatch, tiny):
    class Plugin(Optimizer):
        name = "plugin"

        def _ask(self):
            return self.space.min_config()

    ep = SimpleNamespace(name="from-plugin", load=lambda: Plugin)
    monkeypatch.setattr(base, "_ENTRY_POINTS_LOADED", False)
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    monkeypatch.setattr(
        base.importlib.metadata, "entry_points", lambda group: [ep] if group == "qra_bench.optimizers" else []
    )
    opt = make_optimizer("from-plugin", tiny.space, tiny.mm, tiny.budget("uniform-4bit"))
    assert isinstance(opt, Plugin) and opt.ask() == tiny.space.min_config()
    assert "from-plugin" in available_optimizers()


def test_unknown_optimizer_names_the_available_ones(tiny):
    with pytest.raises(QRBenchError, match="unknown optimizer 'nope'; available: .*random"):
        make_optimizer("nope", tiny.space, tiny.mm, tiny.budget("uniform-4bit"))


def test_duplicate_registration_is_refused():
    with pytest.raises(QRBenchError, match="already registered"):
        register_optimizer("random")(object)


def test_results_are_numbers_or_mappings_with_quality():
    assert result_value(0.5) == 0.5
    assert result_value({"quality": 0.7, "fidelity": 0.25}) == 0.7
    assert result_value({"objective": np.float32(2)}) == 2.0
    for bad in ("0.5", None, True, {"accuracy": 1}):
        with pytest.raises(QRBenchError):
            result_value(bad)


def test_failed_trials_never_become_the_incumbent(tiny):
    opt = make_optimizer("random", tiny.space, tiny.mm, tiny.budget("uniform-4bit"), 0)
    a, b = opt.ask(), opt.ask()
    opt.tell(a, float("nan"))
    assert opt.incumbent is None
    opt.tell(b, {"quality": 0.1, "fidelity": 0.5, "source": "table"})
    assert opt.incumbent == b and opt.history[1].fidelity == 0.5 and opt.history[1].source == "table"
    assert math.isnan(opt.history[0].value) and not opt.pending


def test_context_refuses_a_memory_model_of_another_space(tiny):
    other = MemoryModel(tiny.mm.arch, space=SearchSpace(8, bits=(2, 4), ranks=(8,)))
    with pytest.raises(QRBenchError, match="differs from the memory model"):
        SearchContext.build(tiny.space, other, tiny.budget("uniform-4bit"))


def test_budget_strings_and_bytes_are_accepted(tiny):
    by_name = SearchContext.build(tiny.space, tiny.mm, "uniform-4bit")
    by_bytes = SearchContext.build(tiny.space, tiny.mm, by_name.budget_bytes)
    assert by_name.budget_bytes == by_bytes.budget_bytes == tiny.budget("uniform-4bit").bytes


def test_priors_are_validated(tiny):
    with pytest.raises(QRBenchError, match="importance_q"):
        SearchContext.build(
            tiny.space, tiny.mm, "uniform-4bit", SimpleNamespace(importance_q=[2.0] * 8, importance_r=[0] * 8)
        )


def test_estimators_with_return_std_are_predictors(tiny):
    rng = np.random.default_rng(0)
    bi, ri = tiny.space.sample_indices(rng, 60)
    y, _ = tiny.standin(bi, ri)
    model = BayesianRidge().fit(tiny.space.encode_indices(bi, ri), y)
    pred = predictor_from_estimator(model, tiny.space)
    mean, std = pred(bi[:5], ri[:5])
    assert mean.shape == std.shape == (5,) and np.all(std > 0)


def test_linear_predictor_recovers_a_linear_function(tiny):
    rng = np.random.default_rng(1)
    bi, ri = tiny.space.sample_indices(rng, 80)
    X = tiny.space.encode_indices(bi, ri)
    y = X @ np.linspace(-1, 1, X.shape[1]) + 0.3
    lp = LinearPredictor(tiny.space, alpha=1e-6).fit(bi, ri, y)
    mean, std = lp(bi, ri)
    assert np.allclose(mean, y, atol=1e-3) and np.all(std > 0)


def test_gp_predictor_corrects_a_biased_prior_where_it_was_measured(tiny):
    from qra_bench.search.predictors import GPPredictor

    rng = np.random.default_rng(2)
    bi, ri = tiny.space.sample_indices(rng, 40)
    truth = tiny.standin(bi, ri)[0]

    def biased(b, r):  # the stand-in with a trend it does not have: too optimistic about block 0's bits
        m, s = tiny.standin(b, r)
        return m + 0.05 * np.asarray(b)[:, 0], s

    few = GPPredictor(tiny.space, prior=biased, min_gp=8).fit(bi[:5], ri[:5], truth[:5])
    assert np.array_equal(few(bi, ri)[0], biased(bi, ri)[0])  # too few results: the prior, unchanged
    gp = GPPredictor(tiny.space, prior=biased, min_gp=8).fit(bi[:30], ri[:30], truth[:30])
    held_out = slice(30, 40)
    err_prior = np.abs(biased(bi, ri)[0][held_out] - truth[held_out]).mean()
    err_gp = np.abs(gp(bi, ri)[0][held_out] - truth[held_out]).mean()
    assert err_gp < 0.5 * err_prior
    refit = GPPredictor(tiny.space, prior=biased, kernel=gp.kernel_).fit(bi[:30], ri[:30], truth[:30])
    assert np.allclose(refit(bi, ri)[0], gp(bi, ri)[0])  # reusing the fitted kernel gives the same model
