"""The feature encoder: agrees with the search space's encoding and the memory model, vectorized."""

from __future__ import annotations

import numpy as np
import pytest

from qra_bench.arch import load_arch
from qra_bench.errors import QRBenchError
from qra_bench.memory import MemoryModel
from qra_bench.space import QRConfig, SearchSpace
from qra_bench.surrogate import FeatureEncoder


@pytest.fixture(scope="module")
def memory() -> MemoryModel:
    return MemoryModel(load_arch("tiny"))


def test_ordinal_and_coverage_features_equal_the_space_encoding(memory):
    space = memory.space
    L = space.n_blocks
    configs = space.sample_batch(np.random.default_rng(1), 64)
    X = FeatureEncoder(space, memory).transform_configs(configs)
    E = space.encode_batch(configs)
    names = FeatureEncoder(space, memory).feature_names
    np.testing.assert_array_equal(X[:, : 2 * L], E[:, : 2 * L])
    np.testing.assert_array_equal(X[:, [names.index("bit_coverage"), names.index("rank_coverage")]], E[:, 2 * L :])


def test_aggregates_memory_and_importance_weighted_features(memory):
    space = memory.space
    iq, ir = np.linspace(0, 1, space.n_blocks), np.linspace(1, 0, space.n_blocks)
    enc = FeatureEncoder(space, memory, importance_q=iq, importance_r=ir, memory_offset=1000)
    configs = space.sample_batch(np.random.default_rng(2), 32)
    X = enc.transform_configs(configs, fidelity_frac=0.25)
    col = {n: i for i, n in enumerate(enc.feature_names)}
    np.testing.assert_allclose(X[:, col["avg_bits"]], [c.avg_bits for c in configs])
    np.testing.assert_allclose(X[:, col["avg_rank"]], [c.avg_rank for c in configs])
    np.testing.assert_allclose(
        X[:, col["mem_gib"]] * 2**30, [memory.total_bytes(c) + 1000 for c in configs], rtol=1e-12
    )
    np.testing.assert_allclose(X[:, col["iq_bits"]], [iq @ c.bits / space.n_blocks for c in configs])
    np.testing.assert_allclose(X[:, col["ir_rank"]], [ir @ c.ranks / space.n_blocks for c in configs])
    assert np.all(X[:, col["fidelity_frac"]] == 0.25)
    bi, ri = enc.indices(configs)
    np.testing.assert_array_equal(enc.memory_bytes(bi, ri), [memory.total_bytes(c) + 1000 for c in configs])


def test_transform_from_indices_equals_transform_of_configs_and_takes_per_row_fidelity(memory):
    space = memory.space
    enc = FeatureEncoder(space, memory)
    bi, ri = space.sample_indices(np.random.default_rng(3), 50)
    configs = [space.from_indices(b, r) for b, r in zip(bi, ri)]
    frac = np.linspace(0.1, 1.0, 50)
    np.testing.assert_array_equal(enc.transform(bi, ri, frac), enc.transform_configs(configs, frac))
    assert enc.transform(bi, ri).shape == (50, enc.n_features) == (50, len(enc.feature_names))
    assert enc.transform(bi[0], ri[0]).shape == (1, enc.n_features)  # one configuration as (L,) arrays


def test_without_fidelity_and_without_priors(memory):
    enc = FeatureEncoder(memory.space, memory, include_fidelity=False)
    assert "fidelity_frac" not in enc.feature_names
    X = enc.transform_configs(memory.space.sample_batch(np.random.default_rng(4), 5))
    col = enc.feature_names.index("iq_bits")
    assert np.all(X[:, col] == 0) and np.all(X[:, col + 1] == 0)


def test_mismatched_inputs_are_user_errors(memory):
    space = memory.space
    with pytest.raises(QRBenchError, match="one per block"):
        FeatureEncoder(space, memory, importance_q=[0.5, 0.5])
    with pytest.raises(QRBenchError, match="search space differs"):
        FeatureEncoder(SearchSpace(space.n_blocks, bits=(2, 4), ranks=(4, 8)), memory)
    with pytest.raises(QRBenchError, match=r"shape \(n, 8\)"):
        FeatureEncoder(space, memory).transform(np.zeros((3, 4), int), np.zeros((3, 4), int))
    with pytest.raises(QRBenchError, match="not in the bit ladder"):
        FeatureEncoder(space, memory).transform_configs([QRConfig(bits=(5,) * 8, ranks=(8,) * 8)])
