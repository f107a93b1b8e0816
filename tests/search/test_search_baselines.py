"""Baselines: uniform configurations, SMAC3's HPO facade behind repair, and the LQ-LoRA-style integer program."""

import itertools

import numpy as np
import pytest

from qra_bench.arch import load_arch
from qra_bench.errors import QRBenchError
from qra_bench.memory import MemoryModel
from qra_bench.search import make_optimizer
from qra_bench.search.baselines import milp_config, quantization_error
from qra_bench.space import SearchSpace

pytestmark = pytest.mark.filterwarnings("ignore:Please use `dict\\(config\\)`:DeprecationWarning")


@pytest.fixture(scope="module")
def small():
    """Tiny model, bits {2, 4, 8}, rank 16 only: 3^8 = 6561 configurations, small enough to enumerate."""
    space = SearchSpace(8, bits=(2, 4, 8), ranks=(16,))
    return space, MemoryModel(load_arch("tiny"), space=space)


def _brute_force(space, mm, budget, cost):
    best, best_cfg = np.inf, None
    for combo in itertools.product(range(len(space.bits)), repeat=space.n_blocks):
        bi = np.asarray(combo)
        if mm.total_bytes_batch(bi, np.zeros(space.n_blocks, dtype=np.int64))[0] > budget.bytes:
            continue
        c = cost[np.arange(space.n_blocks), bi].sum()
        if c < best - 1e-12:
            best, best_cfg = c, bi
    return best, best_cfg


def test_milp_gives_uniform_4bit_when_all_blocks_are_equally_sensitive(small):
    # By hand: 2+8 bits costs more bytes than 4+4 (HQQ packs 2 bits into w/4 bytes, 8 bits into w) and has a
    # larger error (1 + 4^-6 vs 2 * 4^-2), so at the 4-bit budget every block stays at 4 bits.
    space, mm = small
    cfg = milp_config(space, mm, mm.budget("uniform-4bit"), np.ones(8))
    assert cfg == space.uniform(4, 16)


def test_milp_spends_the_budget_on_the_sensitive_block(small):
    space, mm = small
    s = np.zeros(8)
    s[2] = 5.0
    cfg = milp_config(space, mm, mm.budget("uniform-4bit"), s)
    assert cfg.bits[2] == 8 and mm.is_feasible(cfg, mm.budget("uniform-4bit"))


@pytest.mark.parametrize("budget_name", ["uniform-4bit", "uniform-3bit", "uniform-2bit"])
def test_milp_is_optimal_against_enumeration(small, budget_name):
    space, mm = small
    budget = mm.budget(budget_name)
    s = np.array([3.0, 0.1, 0.5, 0.02, 1.0, 0.0, 0.3, 2.0])
    cost = s[:, None] * quantization_error(space.bits)[None, :]
    cfg = milp_config(space, mm, budget, s)
    assert mm.is_feasible(cfg, budget)
    got = cost[np.arange(8), space.bit_index(cfg)].sum()
    best, _ = _brute_force(space, mm, budget, cost)
    assert got == pytest.approx(best, abs=1e-9)


def test_milp_lowers_the_rank_when_the_fixed_rank_cannot_fit(tiny):
    budget = tiny.budget("uniform-3bit")
    cfg = milp_config(tiny.space, tiny.mm, budget, tiny.priors.raw_q)
    assert tiny.mm.is_feasible(cfg, budget)
    assert len(set(cfg.ranks)) == 1


def test_milp_baseline_needs_sensitivities(tiny):
    with pytest.raises(QRBenchError, match="sensitivit"):
        make_optimizer("lq-lora-milp", tiny.space, tiny.mm, tiny.budget("uniform-4bit"))
    opt = make_optimizer("lq-lora-milp", tiny.space, tiny.mm, tiny.budget("uniform-4bit"), priors=tiny.priors)
    assert opt.ask() == opt.ask()


def test_uniform_baselines_are_exact_when_they_fit_and_repaired_when_not(llama):
    b4 = llama.budget("uniform-4bit")
    qlora = make_optimizer("qlora-4bit", llama.space, llama.mm, b4)
    assert qlora.ask() == llama.space.uniform(4, 16) and not qlora.repaired
    fp16 = make_optimizer("lora-fp16", llama.space, llama.mm, b4)
    assert fp16.repaired and llama.mm.is_feasible(fp16.ask(), b4)
    upper = make_optimizer("lora-fp16", llama.space, llama.mm, llama.budget("fp16-lora"))
    assert upper.ask() == llama.space.uniform(16, 16) and not upper.repaired


def test_smac_hpo_is_told_the_result_of_each_repaired_proposal(tiny):
    budget = tiny.budget("uniform-3bit")
    opt = make_optimizer(
        "smac-hpo", tiny.space, tiny.mm, budget, 0, n_initial=3, challengers=100, local_search_iterations=1
    )
    for _ in range(5):
        cfg = opt.ask()
        assert tiny.mm.is_feasible(cfg, budget)
        opt.tell(cfg, tiny.standin.quality(cfg))
    assert len(opt._smac.runhistory) == 5
