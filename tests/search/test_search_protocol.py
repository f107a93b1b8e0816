"""Every registered optimizer: every ask is feasible, the same seed gives the same run, bad budgets are refused."""

import pytest

from qra_bench.errors import InfeasibleBudgetError
from qra_bench.search import available_optimizers, make_optimizer

PREDICTOR_USERS = {"evolution", "bo", "autoqra", "autoqra-bits-only", "autoqra-ranks-only"}
BUILTIN = {"autoqra", "autoqra-bits-only", "autoqra-ranks-only", "bo", "evolution", "lora-fp16", "lq-lora-milp",
           "qlora-4bit", "random", "smac-hpo", "uniform-3bit", "uniform-8bit"}


def _kwargs(name, problem, with_predictor):
    kw = {"priors": problem.priors}
    if name in PREDICTOR_USERS and with_predictor:
        kw["predictor"] = problem.standin
    if name == "smac-hpo":
        kw["n_initial"] = 3
    if name.startswith("autoqra"):
        kw["stage1_evals"] = 4
    return kw


def _run(name, problem, budget, seed, n_asks, with_predictor=True):
    opt = make_optimizer(name, problem.space, problem.mm, budget, seed, **_kwargs(name, problem, with_predictor))
    asked = []
    for _ in range(n_asks):
        cfg = opt.ask()
        problem.space.validate(cfg)
        assert problem.mm.is_feasible(cfg, budget), f"{name} asked an over-budget configuration {cfg}"
        asked.append(cfg)
        opt.tell(cfg, problem.standin.quality(cfg))
    return opt, asked


def test_every_builtin_optimizer_is_registered():
    assert BUILTIN <= set(available_optimizers())


@pytest.mark.parametrize("budget_name", ["uniform-4bit", "uniform-3bit"])
@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_ask_is_feasible_on_tiny(name, budget_name, tiny):
    budget = tiny.budget(budget_name)
    opt, asked = _run(name, tiny, budget, seed=0, n_asks=8, with_predictor=(budget_name == "uniform-4bit"))
    assert opt.incumbent in asked
    assert all(tiny.mm.is_feasible(o.config, budget) for o in opt.history)


@pytest.mark.parametrize("budget_name", ["uniform-4bit", "0.5xfp16-lora"])
@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_ask_is_feasible_on_llama_3_1_8b(name, budget_name, llama):
    budget = llama.budget(budget_name)
    _run(name, llama, budget, seed=1, n_asks=4 if name == "smac-hpo" else 7,
         with_predictor=(budget_name == "0.5xfp16-lora"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smac-hpo", "bo", "autoqra"])
def test_longer_smac_runs_stay_feasible_on_llama(name, llama):
    _run(name, llama, llama.budget("uniform-4bit"), seed=2, n_asks=25, with_predictor=False)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_budget_below_the_smallest_configuration_is_refused_at_construction(name, tiny):
    # On the tiny model embeddings, LM head and activations dominate, so half of fp16-LoRA is below even
    # 2-bit rank-4 everywhere: no optimizer may start, let alone ask.
    budget = tiny.budget("0.5xfp16-lora")
    assert tiny.mm.total_bytes(tiny.space.min_config()) > budget.bytes
    with pytest.raises(InfeasibleBudgetError):
        make_optimizer(name, tiny.space, tiny.mm, budget, 0, **_kwargs(name, tiny, True))


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_same_seed_same_run(name, tiny):
    budget = tiny.budget("uniform-3bit")
    _, first = _run(name, tiny, budget, seed=7, n_asks=6)
    _, second = _run(name, tiny, budget, seed=7, n_asks=6)
    assert first == second


def test_different_seeds_differ_for_random_search(llama):
    budget = llama.budget("uniform-4bit")
    _, a = _run("random", llama, budget, seed=0, n_asks=3)
    _, b = _run("random", llama, budget, seed=1, n_asks=3)
    assert a != b
