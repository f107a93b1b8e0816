"""Every registered optimizer: every ask is feasible, the same seed gives the same run, bad budgets are refused."""

import pytest

pytestmark = pytest.mark.filterwarnings("ignore:Please use `dict\\(config\\)`:DeprecationWarning")

from qra_bench.errors import InfeasibleBudgetError
from qra_bench.search import available_optimizers, make_optimizer

PREDICTOR_USERS = {"evolution", "bo", "autoqra", "autoqra-bits-only", "autoqra-ranks-only"}
BUILTIN = {
    "autoqra",
    "autoqra-bits-only",
    "autoqra-ranks-only",
    "bo",
    "evolution",
    "lora-fp16",
    "lq-lora-milp",
    "qlora-4bit",
    "random",
    "smac-hpo",
    "uniform-3bit",
    "uniform-8bit",
}


def _kwargs(name, problem, with_predictor):
    kw = {"priors": problem.priors}
    if name in PREDICTOR_USERS and with_predictor:
        kw["predictor"] = problem.standin
    if name == "smac-hpo":  # small acquisition search: the tests check the protocol, not SMAC3's optimizer
        kw.update(n_initial=3, challengers=200, local_search_iterations=2)
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
    _run(
        name,
        llama,
        budget,
        seed=1,
        n_asks=4 if name == "smac-hpo" else 7,
        with_predictor=(budget_name == "0.5xfp16-lora"),
    )


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


@pytest.mark.parametrize("name", ["bo", "smac-hpo", "autoqra", "evolution", "random"])
def test_results_told_without_asking_are_taken(name, tiny):
    # A runner may warm-start an optimizer from a table: tell first, ask afterwards.
    budget = tiny.budget("uniform-4bit")
    opt = make_optimizer(name, tiny.space, tiny.mm, budget, 0, **_kwargs(name, tiny, False))
    known = [tiny.space.uniform(4, 8), tiny.space.uniform(3, 16)]
    for cfg in known:
        opt.tell(cfg, tiny.standin.quality(cfg))
    for _ in range(4):
        cfg = opt.ask()
        assert tiny.mm.is_feasible(cfg, budget)
        opt.tell(cfg, tiny.standin.quality(cfg))
    assert len(opt.history) == 6


def test_autoqra_switches_to_stage_two_with_asks_still_pending(tiny):
    budget = tiny.budget("uniform-4bit")
    opt = make_optimizer("autoqra", tiny.space, tiny.mm, budget, 0, priors=tiny.priors, stage1_evals=3)
    pending = [opt.ask() for _ in range(5)]  # three from Stage 1, then Stage 2 starts with nothing told yet
    assert opt.stage == 2
    for cfg in pending:
        opt.tell(cfg, tiny.standin.quality(cfg))
    for _ in range(3):
        cfg = opt.ask()
        assert tiny.mm.is_feasible(cfg, budget)
        opt.tell(cfg, tiny.standin.quality(cfg))
    assert len(opt.stage2.smac.runhistory) >= 6


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smac-hpo", "autoqra"])
def test_same_seed_same_run_across_processes(name):
    # SMAC3 orders some sets by Configuration hashes (string hashes change with PYTHONHASHSEED).
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests_dir = str(Path(__file__).resolve().parents[1])  # where the stand-in lives
    code = (
        "import warnings; warnings.filterwarnings('ignore')\n"
        f"import sys; sys.path.insert(0, {tests_dir!r})\n"
        "from qra_bench.arch import load_arch\nfrom qra_bench.memory import MemoryModel\n"
        "from qra_bench.search import make_optimizer\nfrom standin import AnalyticStandIn\n"
        "mm = MemoryModel(load_arch('llama-3.1-8b')); f = AnalyticStandIn(mm.space)\n"
        f"o = make_optimizer({name!r}, mm.space, mm, mm.budget('uniform-4bit'), 4, priors=f.priors(), "
        + ("n_initial=2, challengers=100, local_search_iterations=2" if name == "smac-hpo" else "stage1_evals=3")
        + ")\n"
        "for _ in range(6):\n    c = o.ask(); o.tell(c, f.quality(c)); print(c.to_json())\n"
    )
    outs = [
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": str(h)},
        ).stdout
        for h in (1, 2)
    ]
    assert outs[0] == outs[1] and outs[0].count("\n") == 6
