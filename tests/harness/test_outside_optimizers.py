"""Adapters: the Optuna sampler and the SMAC3 facade behind ask/tell, and the pool-based random search."""

from __future__ import annotations

import pytest

from qra_bench.harness import Benchmark
from qra_bench.harness.outside_optimizers import OptunaOptimizer, PoolRandomSearch
from qra_bench.errors import QRBenchError
from qra_bench.search import available_optimizers, make_optimizer
from qra_bench.search.baselines import SMACHPO

pytestmark = pytest.mark.filterwarnings("ignore:Please use `dict\\(config\\)`:DeprecationWarning")


@pytest.fixture(scope="module")
def bench(table_path, surrogate_path):
    return Benchmark.load(table_path, backend="surrogate", budget="uniform-3bit", surrogate=surrogate_path)


def _drive(opt, bench, n):
    asked = []
    for _ in range(n):
        cfg = opt.ask()
        assert bench.is_feasible(cfg)
        opt.tell(cfg, bench.objective(cfg).quality)
        asked.append(cfg)
    return asked


def test_adapters_are_registered_and_smac_reuses_the_smac_hpo_baseline(bench):
    assert {"optuna-tpe", "smac", "pool-random", "smac-hpo"} <= set(available_optimizers())
    smac = make_optimizer("smac", bench.space, bench.memory_model, bench.budget, 0)
    assert isinstance(smac, SMACHPO) and smac.name == "smac"


def test_optuna_tpe_stays_in_budget_and_a_seed_reproduces_it(bench):
    first = _drive(
        make_optimizer("optuna-tpe", bench.space, bench.memory_model, bench.budget, 3, n_startup=4), bench, 12
    )
    second = _drive(
        make_optimizer("optuna-tpe", bench.space, bench.memory_model, bench.budget, 3, n_startup=4), bench, 12
    )
    assert first == second and len(set(first)) > 6


def test_optuna_learns_the_repaired_configuration_not_the_over_budget_proposal(bench):
    opt = OptunaOptimizer(bench.space, bench.memory_model, bench.budget, 0, n_startup=4)
    _drive(opt, bench, 10)
    import optuna

    complete = opt.study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    failed = opt.study.get_trials(states=[optuna.trial.TrialState.FAIL])
    assert len(complete) == 10  # one completed trial per told result, proposal or repair
    assert failed, "random 16-bit proposals under a 3-bit budget need repair; their trials are marked failed"
    for t in complete:
        cfg = bench.space.config(
            [t.params[f"bits_{l:02d}"] for l in range(8)], [t.params[f"rank_{l:02d}"] for l in range(8)]
        )
        assert bench.is_feasible(cfg)


def test_pool_random_walks_the_pool_and_needs_one(bench):
    pool = bench.pool()
    opt = PoolRandomSearch(bench.space, bench.memory_model, bench.budget, 0, pool=pool)
    assert sorted(c.hash for c in _drive(opt, bench, len(pool))) == sorted(c.hash for c in pool)
    with pytest.raises(QRBenchError, match="no pool"):
        PoolRandomSearch(bench.space, bench.memory_model, bench.budget, 0).ask()
