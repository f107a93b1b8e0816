"""SearchSpace and QRConfig: validation, canonical form, rung indices, encoding, neighbourhood."""

import numpy as np
import pytest

from qra_bench.errors import QRBenchError
from qra_bench.space import QRConfig, SearchSpace

# sha256 of '{"bits":[4,2,8,16],"ranks":[16,4,8,0]}', computed once with `sha256sum`; a change of the
# canonical form changes every table key, so it must fail here first.
PINNED_JSON = '{"bits":[4,2,8,16],"ranks":[16,4,8,0]}'
PINNED_HASH = "be8a5f40a42ecbe765ccd8ca8bdb0211cd517aa880183331ff2e80ef4ee92c11"


@pytest.fixture
def space():
    return SearchSpace(4, bits=(2, 3, 4, 8, 16), ranks=(0, 4, 8, 16))


def test_canonical_json_and_hash_are_pinned():
    cfg = QRConfig(bits=[4, 2, 8, 16], ranks=np.array([16, 4, 8, 0]))
    assert cfg.to_json() == PINNED_JSON
    assert cfg.hash == PINNED_HASH
    assert QRConfig.from_json(PINNED_JSON) == cfg


def test_config_normalizes_lists_and_numpy_ints_to_python_tuples():
    cfg = QRConfig(bits=np.array([4, 4], dtype=np.int32), ranks=[np.int64(8), 16])
    assert cfg.bits == (4, 4) and cfg.ranks == (8, 16)
    assert all(type(v) is int for v in cfg.bits + cfg.ranks)
    assert cfg == QRConfig((4, 4), (8, 16)) and hash(cfg) == hash(QRConfig((4, 4), (8, 16)))


def test_config_averages_count_rank_zero_as_zero_log():
    cfg = QRConfig(bits=(2, 4, 8, 16), ranks=(0, 4, 16, 16))
    assert cfg.n_blocks == 4
    assert cfg.avg_bits == 7.5
    assert cfg.avg_rank == 9.0
    assert cfg.avg_log2_rank == pytest.approx((0 + 2 + 4 + 4) / 4)


@pytest.mark.parametrize(
    "bits, ranks, match",
    [
        ((4, 4), (8,), "must match"),
        ((4, 0), (8, 8), "out of range"),
        ((4, 17), (8, 8), "out of range"),
        ((4, 4), (8, -1), "negative"),
        ((4.0, 4), (8, 8), "integer"),
        ((), (), "at least one"),
    ],
)
def test_config_rejects_malformed_values(bits, ranks, match):
    with pytest.raises(QRBenchError, match=match):
        QRConfig(bits=bits, ranks=ranks)


def test_from_json_rejects_garbage():
    with pytest.raises(QRBenchError):
        QRConfig.from_json("not json")
    with pytest.raises(QRBenchError):
        QRConfig.from_json('{"bits":[4]}')


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_blocks=0), "n_blocks"),
        (dict(n_blocks=2, bits=(4, 2)), "strictly increasing"),
        (dict(n_blocks=2, bits=(4, 4)), "strictly increasing"),
        (dict(n_blocks=2, bits=(0, 4)), "out of range"),
        (dict(n_blocks=2, bits=(4, 32)), "out of range"),
        (dict(n_blocks=2, ranks=(-4, 8)), "out of range"),
        (dict(n_blocks=2, ranks=()), "empty"),
    ],
)
def test_space_rejects_bad_ladders(kwargs, match):
    with pytest.raises(QRBenchError, match=match):
        SearchSpace(**kwargs)


def test_validate_names_bad_value_and_ladder(space):
    with pytest.raises(QRBenchError, match=r"5 bit widths and 5 ranks; this space has 4 blocks"):
        space.config((4,) * 5, (8,) * 5)
    with pytest.raises(QRBenchError, match=r"bit width 5 \(block 1\) not in the bit ladder \{2, 3, 4, 8, 16\}"):
        space.config((4, 5, 4, 4), (8,) * 4)
    with pytest.raises(QRBenchError, match=r"rank 32 \(block 3\) not in the rank ladder \{0, 4, 8, 16\}"):
        space.config((4,) * 4, (8, 8, 8, 32))
    with pytest.raises(QRBenchError, match=r"rank -8 \(block 3\) not in the rank ladder \{0, 4, 8, 16\}"):
        space.config((4,) * 4, (8, 8, 8, -8))


def test_rank_zero_allowed_only_when_on_the_ladder():
    assert SearchSpace(2, ranks=(0, 4)).uniform(4, 0).ranks == (0, 0)
    with pytest.raises(QRBenchError, match="rank 0"):
        SearchSpace(2, ranks=(4, 8)).uniform(4, 0)


def test_indices_round_trip_and_samples_stay_on_ladder(space):
    rng = np.random.default_rng(0)
    for cfg in space.sample_batch(rng, 50):
        space.validate(cfg)
        assert space.from_indices(space.bit_index(cfg), space.rank_index(cfg)) == cfg
    cfg = space.config((2, 3, 16, 8), (0, 16, 4, 8))
    assert space.bit_index(cfg).tolist() == [0, 1, 4, 3]
    assert space.rank_index(cfg).tolist() == [0, 3, 1, 2]
    with pytest.raises(QRBenchError):
        space.from_indices([0, 0, 0, 5], [0, 0, 0, 0])


def test_sampling_is_reproducible_and_covers_every_rung(space):
    a = space.sample_batch(np.random.default_rng(7), 200)
    b = space.sample_batch(np.random.default_rng(7), 200)
    assert a == b
    assert {v for c in a for v in c.bits} == set(space.bits)
    assert {v for c in a for v in c.ranks} == set(space.ranks)


def test_encoding_shape_range_and_coverage(space):
    cfg = space.config((2, 16, 16, 16), (0, 0, 16, 16))
    x = space.encode(cfg)
    assert x.shape == (2 * 4 + 2,) == (space.n_features,)
    assert x.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 2 / 5, 2 / 4]
    batch = space.encode_batch(space.sample_batch(np.random.default_rng(1), 64))
    assert batch.shape == (64, 10)
    assert batch.min() >= 0.0 and batch.max() <= 1.0
    assert np.array_equal(space.encode_batch([cfg])[0], x)


def test_neighbours_are_exactly_the_one_edit_moves(space):
    cfg = space.config((2, 4, 16, 8), (0, 8, 16, 4))
    nbrs = space.neighbours(cfg)
    # block 0: bits up only, rank up only; block 1: 2 + 2; block 2: bits down, rank down; block 3: 2 + 2
    assert len(nbrs) == 2 + 4 + 2 + 4
    assert len(set(nbrs)) == len(nbrs) and cfg not in nbrs
    assert all(space.distance(cfg, n) == 1 for n in nbrs)
    assert nbrs[0] == space.config((3, 4, 16, 8), (0, 8, 16, 4))  # block 0, bits up (no rung below)


def test_distance_counts_atomic_edits(space):
    a = space.config((2, 4, 16, 8), (0, 8, 16, 4))
    b = space.config((16, 4, 2, 8), (16, 8, 0, 8))
    assert space.distance(a, a) == 0
    assert space.distance(a, b) == space.distance(b, a) == 4 + 4 + 3 + 3 + 1


def test_parse_ladder_values():
    assert SearchSpace.parse_ladder_values("4", 3, "bits") == (4, 4, 4)
    assert SearchSpace.parse_ladder_values(" 4, 2 ,8", 3, "bits") == (4, 2, 8)
    with pytest.raises(QRBenchError, match="has 2 values; give 1"):
        SearchSpace.parse_ladder_values("4,2", 3, "bits")
    for bad in ("four", "4,,2", "4.5", ""):
        with pytest.raises(QRBenchError, match="cannot parse"):
            SearchSpace.parse_ladder_values(bad, 3, "ranks")
