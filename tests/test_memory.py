"""MemoryModel: every term, backend layouts, fast totals, budgets, repair."""

import math

import numpy as np
import pytest

from qra_bench.arch import load_arch
from qra_bench.errors import InfeasibleBudgetError, QRBenchError
from qra_bench.memory import (
    TERMS,
    Budget,
    MemoryModel,
    MemorySettings,
    activation_bytes,
    bnb_layout,
    hqq_layout,
    method_formula_bytes,
    parse_budget,
    torchao_layout,
)
from qra_bench.space import QRConfig, SearchSpace

GiB = 2**30


@pytest.fixture(scope="module")
def llama8b():
    return load_arch("llama-3.1-8b")


@pytest.fixture(scope="module")
def tiny():
    return load_arch("tiny")


def test_formula_backend_reproduces_method_formula_by_hand(llama8b):
    # The method's M(C): sum_l [ |W_l| q/8 + (|A_l|+|B_l|) 2 bytes + ceil(|W_l|/128) * 2 values * 2 bytes ], written
    # out from LLaMA-3.1-8B's shapes (hidden 4096, 32 heads, 8 kv heads x 128, intermediate 14336).
    h, kv, inter = 4096, 8 * 128, 14336
    w_block = h * h + h * kv + h * kv + h * h + 3 * h * inter
    ab_per_rank = (h + h) + 2 * (h + kv) + (h + h) + 3 * (h + inter)
    per_block = w_block * 4 // 8 + ab_per_rank * 16 * 2 + math.ceil(w_block / 128) * 2 * 2
    expected = 32 * per_block
    assert expected == 3_791_650_816

    model = MemoryModel(
        llama8b, MemorySettings(backend="formula", weight_dtype_bytes=2, meta_dtype_bytes=2, lora_dtype_bytes=2)
    )
    cfg = model.space.uniform(4, 16)
    bd = model.breakdown(cfg)
    assert bd.weights_and_adapters == expected
    assert method_formula_bytes(llama8b, cfg) == expected
    assert bd.terms["quantized_weights"] == 32 * w_block // 2
    assert bd.terms["quant_metadata"] == 32 * (w_block // 128) * 4


def test_breakdown_itemizes_every_term_and_sums_to_total(llama8b):
    model = MemoryModel(llama8b)
    bd = model.breakdown(model.space.uniform(4, 16))
    assert tuple(bd.terms) == TERMS
    assert bd.total == sum(bd.terms.values()) == model.total_bytes(bd.config)
    assert bd.terms["embeddings"] == bd.terms["lm_head"] == 128256 * 4096 * 2  # untied
    assert bd.terms["final_norm"] == 4096 * 2
    assert bd.terms["block_norms_and_biases"] == 32 * 2 * 4096 * 2
    assert bd.terms["unquantized_block_weights"] == 0
    assert bd.terms["lora_gradients"] == 2 * bd.terms["lora_adapters"]  # fp32 grads of fp16 adapters
    assert bd.terms["optimizer_state"] == 4 * bd.terms["lora_adapters"]  # two fp32 AdamW states
    assert bd.terms["rotary_tables"] == 128 * 4  # two float32 tables of head_dim/2
    assert (
        len(bd.per_block) == 32
        and sum(b["total"] for b in bd.per_block)
        + bd.terms["embeddings"]
        + bd.terms["final_norm"]
        + bd.terms["rotary_tables"]
        + bd.terms["lm_head"]
        + bd.terms["activations"]
        == bd.total
    )
    table = bd.format_table()
    for name in TERMS + ("total", "weights_and_adapters"):
        assert name in table
    assert bd.to_dict()["total"] == bd.total


def test_sixteen_bit_blocks_are_unquantized_without_metadata(tiny):
    model = MemoryModel(tiny)
    cfg = model.space.config((16,) + (4,) * 7, (16,) * 8)
    blk = model.breakdown(cfg).per_block[0]
    assert blk["unquantized_block_weights"] == tiny.block_linear_params() * 2
    assert blk["quantized_weights"] == blk["quant_metadata"] == 0


def test_tied_model_has_no_lm_head_and_rank_zero_no_adapter(tiny):
    model = MemoryModel(tiny, space=SearchSpace(8, ranks=(0, 4, 8, 16)))
    bd = model.breakdown(model.space.uniform(4, 0))
    assert bd.terms["lm_head"] == 0
    assert bd.terms["lora_adapters"] == bd.terms["lora_gradients"] == bd.terms["optimizer_state"] == 0


def test_sgd_keeps_no_optimizer_state(tiny):
    bd = MemoryModel(tiny, MemorySettings(optimizer="sgd")).breakdown(QRConfig((4,) * 8, (16,) * 8))
    assert bd.terms["optimizer_state"] == 0


def test_backend_layouts():
    # The layouts the libraries really store (tests/test_memory_real.py proves them against real tensors).
    s = MemorySettings(group_size=128, meta_dtype_bytes=2)
    n_in, n_out = 4096, 1024
    w = n_in * n_out
    rows = w // 128  # HQQ views the weight as W/g rows of g codes; one scale and one zero per row
    assert hqq_layout(n_in, n_out, 8, s) == (w, rows * 4)
    assert hqq_layout(n_in, n_out, 4, s) == (w // 2, rows * 4)
    assert hqq_layout(n_in, n_out, 3, s) == (math.ceil(rows / 10) * 128 * 4, rows * 4)  # 10 rows per int32 row
    assert hqq_layout(n_in, n_out, 2, s)[0] == w // 4
    assert hqq_layout(256, 512, 3, s)[0] == 103 * 128 * 4  # hqq 0.2.8: W_q of a 256x512 weight is (103, 128) int32
    # torchao: int8 qdata per weight, a scale in the meta dtype and an int8 zero point per group.
    assert torchao_layout(n_in, n_out, 2, s) == (w, w // 128 * (2 + 1))
    assert torchao_layout(n_in, n_out, 2, MemorySettings(meta_dtype_bytes=4)) == (w, w // 128 * (4 + 1))
    assert torchao_layout(n_in, n_out, 2, MemorySettings(meta_dtype_bytes=2, zero_point_bytes=2)) == (w, w // 128 * 4)
    assert hqq_layout(n_in, n_out, 4, MemorySettings(meta_dtype_bytes=2, zero_point_bytes=1))[1] == rows * 3
    # bitsandbytes NF4: float32 absmax per 64 weights plus the layer's 16-entry float32 code book.
    assert bnb_layout(n_in, n_out, 4, s) == (w // 2, w // 64 * 4 + 16 * 4)
    dq = MemorySettings(bnb_double_quant=True)
    # Double quantization: uint8 absmax, float32 absmax per 256 blocks, 256-entry float32 nested code book,
    # float32 offset, and the 16-entry code book.
    assert bnb_layout(n_in, n_out, 4, dq) == (w // 2, w // 64 + math.ceil(w // 64 / 256) * 4 + 256 * 4 + 4 + 16 * 4)
    assert bnb_layout(n_in, n_out, 8, s) == (w, n_out * 4)
    with pytest.raises(QRBenchError, match="'bnb' cannot store 3-bit"):
        bnb_layout(n_in, n_out, 3, s)
    with pytest.raises(QRBenchError, match="'hqq' cannot store 5-bit"):
        hqq_layout(n_in, n_out, 5, s)
    with pytest.raises(QRBenchError, match="zero-point-bytes"):
        MemorySettings(zero_point_bytes=0)


def test_backend_restricts_the_default_ladder_and_rejects_unstorable_rungs(tiny):
    assert MemoryModel(tiny, MemorySettings(backend="bnb")).space.bits == (4, 8, 16)
    with pytest.raises(QRBenchError, match=r"backend 'bnb' cannot store bits \[2, 3\]"):
        MemoryModel(tiny, MemorySettings(backend="bnb"), SearchSpace(8))
    with pytest.raises(QRBenchError, match="unknown backend 'gguf'"):
        MemorySettings(backend="gguf")
    with pytest.raises(QRBenchError, match="group-size"):
        MemorySettings(group_size=0)


def test_activations_estimate_shrinks_with_checkpointing_and_grows_with_tokens(llama8b):
    base = activation_bytes(llama8b, MemorySettings())
    assert activation_bytes(llama8b, MemorySettings(grad_checkpointing=True)) < base / 5
    assert activation_bytes(llama8b, MemorySettings(seq_len=1024)) > 2 * base - 1  # attention probs are T^2


@pytest.mark.parametrize("backend", ["formula", "hqq", "torchao", "bnb"])
def test_batch_totals_equal_breakdown_totals(backend, llama8b):
    model = MemoryModel(
        llama8b,
        MemorySettings(backend=backend),
        SearchSpace(32, bits=(4, 8, 16) if backend == "bnb" else (2, 3, 4, 8, 16), ranks=(0, 4, 8, 16, 64)),
    )
    bit_idx, rank_idx = model.space.sample_indices(np.random.default_rng(3), 20)
    batch = model.total_bytes_batch(bit_idx, rank_idx)
    assert batch.shape == (20,) and batch.dtype == np.int64
    for k in range(20):
        cfg = model.space.from_indices(bit_idx[k], rank_idx[k])
        assert batch[k] == model.total_bytes(cfg) == model.breakdown(cfg).total


# -- budgets ---------------------------------------------------------------------------------------------
def test_named_budgets(llama8b):
    model = MemoryModel(llama8b)
    u4 = parse_budget("uniform-4bit", model)
    assert u4.bytes == model.total_bytes(model.space.uniform(4, 16))
    assert u4.reference == model.space.uniform(4, 16)
    fp16 = parse_budget("fp16-lora", model)
    assert fp16.bytes == model.total_bytes(model.space.uniform(16, 16))
    assert parse_budget("0.5xfp16-lora", model).bytes == fp16.bytes // 2
    assert parse_budget("0.5xfp16", model).bytes == fp16.bytes // 2
    assert parse_budget("uniform-8bit", model).bytes == model.total_bytes(model.space.uniform(8, 16))


def test_named_budget_uses_largest_rank_when_16_is_off_the_ladder(tiny):
    model = MemoryModel(tiny, space=SearchSpace(8, ranks=(2, 4, 8)))
    assert parse_budget("uniform-4bit", model).bytes == model.total_bytes(model.space.uniform(4, 8))


def test_named_budget_may_lie_outside_the_bit_ladder(tiny):
    model = MemoryModel(tiny, space=SearchSpace(8, bits=(2, 3, 4, 8)))
    assert parse_budget("fp16-lora", model).bytes == model.breakdown(QRConfig((16,) * 8, (16,) * 8)).total


@pytest.mark.parametrize(
    "text, expected",
    [
        ("3.5GiB", int(3.5 * GiB)),
        ("800MiB", 800 * 2**20),
        ("2GB", 2 * 10**9),
        ("123456", 123456),
        ("1.5 gib", int(1.5 * GiB)),
    ],
)
def test_absolute_budgets(text, expected, tiny):
    b = parse_budget(text, MemoryModel(tiny))
    assert b == Budget(name=text, bytes=expected)


@pytest.mark.parametrize(
    "text",
    [
        "-1GiB",
        "0",
        "0MiB",
        "nan",
        "NaNGiB",
        "inf",
        "garbage",
        "4 parsecs",
        "0xfp16-lora",
        "-0.5xfp16-lora",
        "nanxfp16-lora",
        "uniform-0bit",
        "uniform-17bit",
        "uniform-fourbit",
        "0.1",
    ],
)
def test_bad_budgets_name_the_allowed_forms(text, tiny):
    with pytest.raises(QRBenchError) as err:
        parse_budget(text, MemoryModel(tiny))
    assert text in str(err.value) and "\n" not in str(err.value)


def test_uniform_budget_the_backend_cannot_store_is_a_user_error(tiny):
    with pytest.raises(QRBenchError, match="'bnb' cannot store 3-bit"):
        parse_budget("uniform-3bit", MemoryModel(tiny, MemorySettings(backend="bnb")))


# -- feasibility and repair ------------------------------------------------------------------------------
def test_feasibility(llama8b):
    model = MemoryModel(llama8b)
    budget = model.budget("uniform-4bit")
    assert model.is_feasible(model.space.uniform(4, 16), budget)
    assert model.is_feasible(model.space.uniform(4, 16), budget.bytes)
    assert not model.is_feasible(model.space.uniform(8, 16), budget)


def test_repair_returns_feasible_lower_deterministic_configs(llama8b):
    model = MemoryModel(llama8b)
    budget = model.budget("uniform-4bit")
    rng = np.random.default_rng(11)
    iq, ir = rng.random(32), rng.random(32)
    for cfg in model.space.sample_batch(rng, 15) + [model.max_config()]:
        fixed = model.repair(cfg, budget, iq, ir)
        assert model.is_feasible(fixed, budget)
        assert all(a <= b for a, b in zip(fixed.bits, cfg.bits))
        assert all(a <= b for a, b in zip(fixed.ranks, cfg.ranks))
        assert model.repair(cfg, budget, iq, ir) == fixed
        if model.is_feasible(cfg, budget):
            assert fixed == cfg


def test_repair_downgrades_low_importance_blocks_first(tiny):
    model = MemoryModel(tiny, space=SearchSpace(8, bits=(4, 8), ranks=(8, 16)))
    start = model.space.uniform(8, 16)
    # Room for exactly one block to lose its 8 -> 4 bit saving.
    one_step = model.bit_cost[0, 1] - model.bit_cost[0, 0]
    budget = model.total_bytes(start) - one_step
    iq = np.ones(8)
    iq[5] = 0.0
    fixed = model.repair(start, budget, importance_q=iq, importance_r=np.ones(8))
    assert fixed.bits == (8, 8, 8, 8, 8, 4, 8, 8) and fixed.ranks == start.ranks
    # Without priors the biggest saving wins (tiny: a rank step frees more than a bit step), and ties between
    # identical blocks go to the lowest block index.
    assert model.rank_cost[0, 1] - model.rank_cost[0, 0] > one_step
    no_prior = model.repair(start, budget)
    assert no_prior.bits == start.bits and no_prior.ranks == (8,) + (16,) * 7


def test_repair_steps_past_zero_saving_rungs(llama8b):
    # torchao stores every bit width <= 8 as one byte per weight: 8 -> 4 -> 2 saves nothing; repair must
    # still terminate with a feasible configuration via the rank axis.
    model = MemoryModel(llama8b, MemorySettings(backend="torchao"), SearchSpace(32, bits=(2, 4, 8), ranks=(4, 16)))
    budget = model.total_bytes(model.space.uniform(2, 4)) + 1
    fixed = model.repair(model.space.uniform(8, 16), budget)
    assert model.is_feasible(fixed, budget)


def test_infeasible_budget_raises(tiny):
    model = MemoryModel(tiny)
    too_small = model.total_bytes(model.min_config()) - 1
    with pytest.raises(InfeasibleBudgetError, match="below the smallest configuration"):
        model.repair(model.max_config(), too_small)


def test_min_and_max_configs_bound_every_total(tiny):
    model = MemoryModel(tiny)
    lo, hi = model.total_bytes(model.min_config()), model.total_bytes(model.max_config())
    totals = model.total_bytes_batch(*model.space.sample_indices(np.random.default_rng(0), 500))
    assert lo <= totals.min() and totals.max() <= hi
