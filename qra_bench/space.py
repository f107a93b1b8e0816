"""The search space: per-block bit widths and LoRA ranks on fixed ladders.

A configuration (:class:`QRConfig`) gives every transformer block ``l`` a pair ``(q_l, r_l)``: the weight
bit width of all its linear modules and the LoRA rank of all their adapters. A :class:`SearchSpace` fixes the
number of blocks and the two ladders (the allowed values, "rungs"), validates configurations against them,
and converts between configurations, rung indices and the ordinal feature encoding used by surrogates.

``bits == 16`` means "left unquantized"; ``rank == 0`` means "no adapter on that block".
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterable, Sequence

import numpy as np

from qra_bench.errors import QRBenchError

__all__ = ["QRConfig", "SearchSpace", "DEFAULT_BITS", "DEFAULT_RANKS"]

DEFAULT_BITS: tuple[int, ...] = (2, 3, 4, 8, 16)
DEFAULT_RANKS: tuple[int, ...] = (4, 8, 16)
MIN_BITS, MAX_BITS = 1, 16


def _as_int(value: Any, what: str) -> int:
    """Return ``value`` as a python int; floats, strings and bools are user errors, not silently cast."""
    # bool is an int subclass, but True as a bit width is always a mistake.
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise QRBenchError(f"{what} must be an integer, got {value!r}")
    return int(value)


def _as_int_tuple(values: Any, what: str) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise QRBenchError(f"{what} must be a sequence of integers, got {values!r}")
    return tuple(_as_int(v, what) for v in values)


def _fmt(values: Sequence[int]) -> str:
    return "{" + ", ".join(str(v) for v in values) + "}"


@dataclass(frozen=True)
class QRConfig:
    """Bit width and LoRA rank per transformer block.

    Parameters
    ----------
    bits
        Weight bit width of block ``l`` (1..16; 16 = unquantized).
    ranks
        LoRA rank of block ``l`` (>= 0; 0 = no adapter).

    Lists and numpy integers are accepted and normalized to tuples of python ``int``, so two equal
    configurations always compare, hash and serialize identically. Membership in a ladder is checked by
    :meth:`SearchSpace.validate`, not here, so budgets can be defined by configurations outside the ladder.
    """

    bits: tuple[int, ...]
    ranks: tuple[int, ...]

    def __post_init__(self) -> None:
        bits = _as_int_tuple(self.bits, "bits")
        ranks = _as_int_tuple(self.ranks, "ranks")
        if not bits:
            raise QRBenchError("a configuration needs at least one block, got bits=()")
        if len(bits) != len(ranks):
            raise QRBenchError(f"bits has {len(bits)} blocks but ranks has {len(ranks)}; they must match")
        for b in bits:
            if not MIN_BITS <= b <= MAX_BITS:
                raise QRBenchError(f"bit width {b} out of range; allowed: {MIN_BITS}..{MAX_BITS}")
        for r in ranks:
            if r < 0:
                raise QRBenchError(f"rank {r} is negative; allowed: ranks >= 0 (0 = no adapter)")
        object.__setattr__(self, "bits", bits)
        object.__setattr__(self, "ranks", ranks)

    @property
    def n_blocks(self) -> int:
        return len(self.bits)

    @property
    def avg_bits(self) -> float:
        return float(np.mean(self.bits))

    @property
    def avg_rank(self) -> float:
        return float(np.mean(self.ranks))

    @property
    def avg_log2_rank(self) -> float:
        """Mean of log2(rank); a block without adapter (rank 0) counts as 0."""
        return float(np.mean([math.log2(r) if r > 0 else 0.0 for r in self.ranks]))

    def to_json(self) -> str:
        """Canonical serialization: sorted keys, no spaces. The table key and cache key everywhere."""
        return json.dumps({"bits": list(self.bits), "ranks": list(self.ranks)}, sort_keys=True, separators=(",", ":"))

    @cached_property
    def hash(self) -> str:
        """SHA-256 hex digest of :meth:`to_json`."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    @classmethod
    def from_json(cls, text: str) -> "QRConfig":
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as exc:
            raise QRBenchError(f"not a configuration JSON: {text!r} ({exc})") from None
        if not isinstance(data, dict) or set(data) != {"bits", "ranks"}:
            raise QRBenchError(f"configuration JSON must have exactly the keys 'bits' and 'ranks', got {text!r}")
        return cls(bits=data["bits"], ranks=data["ranks"])

    def __str__(self) -> str:
        return f"bits={list(self.bits)} ranks={list(self.ranks)}"


def _check_ladder(values: Any, what: str, lo: int, hi: int | None) -> tuple[int, ...]:
    ladder = _as_int_tuple(values, f"{what} ladder")
    if not ladder:
        raise QRBenchError(f"the {what} ladder is empty; give at least one value")
    if list(ladder) != sorted(set(ladder)):
        raise QRBenchError(f"the {what} ladder {list(ladder)} must be strictly increasing (sorted, no repeats)")
    for v in ladder:
        if v < lo or (hi is not None and v > hi):
            allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise QRBenchError(f"{what} ladder value {v} out of range; allowed: {allowed}")
    return ladder


@dataclass(frozen=True)
class SearchSpace:
    """Number of blocks and the bit and rank ladders every configuration draws from.

    Parameters
    ----------
    n_blocks
        Number of transformer blocks ``L`` (>= 1).
    bits
        Allowed bit widths, strictly increasing, each in 1..16.
    ranks
        Allowed LoRA ranks, strictly increasing, each >= 0 (0 = no adapter).
    """

    n_blocks: int
    bits: tuple[int, ...] = DEFAULT_BITS
    ranks: tuple[int, ...] = DEFAULT_RANKS

    def __post_init__(self) -> None:
        n = _as_int(self.n_blocks, "n_blocks")
        if n < 1:
            raise QRBenchError(f"n_blocks must be >= 1, got {n}")
        object.__setattr__(self, "n_blocks", n)
        object.__setattr__(self, "bits", _check_ladder(self.bits, "bits", MIN_BITS, MAX_BITS))
        object.__setattr__(self, "ranks", _check_ladder(self.ranks, "ranks", 0, None))

    # Rung lookup tables, built once per space (not dataclass fields, so equality, hashing and repr are
    # unaffected): validation and index conversion are on the search hot path.
    @cached_property
    def _bit_pos(self) -> dict[int, int]:
        return {b: i for i, b in enumerate(self.bits)}

    @cached_property
    def _rank_pos(self) -> dict[int, int]:
        return {r: i for i, r in enumerate(self.ranks)}

    @cached_property
    def _bits_arr(self) -> np.ndarray:
        return np.asarray(self.bits, dtype=np.int64)

    @cached_property
    def _ranks_arr(self) -> np.ndarray:
        return np.asarray(self.ranks, dtype=np.int64)

    # -- construction and validation ---------------------------------------------------------------------
    @property
    def n_features(self) -> int:
        """Length of :meth:`encode`'s vector: 2L + 2."""
        return 2 * self.n_blocks + 2

    def _check_values(self, bits: Sequence[int], ranks: Sequence[int]) -> None:
        if len(bits) != self.n_blocks or len(ranks) != self.n_blocks:
            raise QRBenchError(
                f"configuration has {len(bits)} bit widths and {len(ranks)} ranks; this space has {self.n_blocks} blocks"
            )
        for l, b in enumerate(bits):
            if b not in self._bit_pos:
                raise QRBenchError(f"bit width {b} (block {l}) not in the bit ladder {_fmt(self.bits)}")
        for l, r in enumerate(ranks):
            if r not in self._rank_pos:
                raise QRBenchError(f"rank {r} (block {l}) not in the rank ladder {_fmt(self.ranks)}")

    def validate(self, cfg: QRConfig) -> QRConfig:
        """Return ``cfg`` if it fits this space, else raise :class:`QRBenchError` naming the bad value."""
        self._check_values(cfg.bits, cfg.ranks)
        return cfg

    def config(self, bits: Sequence[int], ranks: Sequence[int]) -> QRConfig:
        """Build and validate a configuration (lists, tuples or numpy arrays)."""
        # Check the ladder before QRConfig's own range checks, so a negative rank is reported against the
        # ladder the user can choose from rather than as a bare range error.
        bits_t, ranks_t = _as_int_tuple(bits, "bits"), _as_int_tuple(ranks, "ranks")
        self._check_values(bits_t, ranks_t)
        return QRConfig(bits=bits_t, ranks=ranks_t)

    def uniform(self, bits: int, rank: int) -> QRConfig:
        """Every block at ``bits`` and ``rank``."""
        return self.config((bits,) * self.n_blocks, (rank,) * self.n_blocks)

    def min_config(self) -> QRConfig:
        """Every block on the lowest bit and rank rung (the least memory)."""
        return self.uniform(self.bits[0], self.ranks[0])

    def max_config(self) -> QRConfig:
        """Every block on the highest bit and rank rung (the most memory)."""
        return self.uniform(self.bits[-1], self.ranks[-1])

    def sample_indices(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` uniformly random rung-index arrays ``(bit_idx, rank_idx)``, each of shape (n, L)."""
        bit_idx = rng.integers(0, len(self.bits), size=(n, self.n_blocks))
        rank_idx = rng.integers(0, len(self.ranks), size=(n, self.n_blocks))
        return bit_idx, rank_idx

    def sample(self, rng: np.random.Generator) -> QRConfig:
        """One configuration, every block's bit and rank rung drawn uniformly."""
        bit_idx, rank_idx = self.sample_indices(rng, 1)
        return self.from_indices(bit_idx[0], rank_idx[0])

    def sample_batch(self, rng: np.random.Generator, n: int) -> list[QRConfig]:
        """``n`` independent :meth:`sample` draws."""
        bit_idx, rank_idx = self.sample_indices(rng, n)
        return [self.from_indices(b, r) for b, r in zip(bit_idx, rank_idx)]

    # -- rung indices ------------------------------------------------------------------------------------
    def bit_index(self, cfg: QRConfig) -> np.ndarray:
        """Position of every block's bit width on the bit ladder, shape (L,), int64."""
        self.validate(cfg)
        return np.fromiter((self._bit_pos[b] for b in cfg.bits), dtype=np.int64, count=cfg.n_blocks)

    def rank_index(self, cfg: QRConfig) -> np.ndarray:
        """Position of every block's rank on the rank ladder, shape (L,), int64."""
        self.validate(cfg)
        return np.fromiter((self._rank_pos[r] for r in cfg.ranks), dtype=np.int64, count=cfg.n_blocks)

    def from_indices(self, bit_idx: Sequence[int] | np.ndarray, rank_idx: Sequence[int] | np.ndarray) -> QRConfig:
        """Inverse of :meth:`bit_index` / :meth:`rank_index`."""
        bi = np.asarray(bit_idx)
        ri = np.asarray(rank_idx)
        if bi.shape != (self.n_blocks,) or ri.shape != (self.n_blocks,):
            raise QRBenchError(f"rung indices must have shape ({self.n_blocks},), got {bi.shape} and {ri.shape}")
        if bi.min() < 0 or bi.max() >= len(self.bits):
            raise QRBenchError(f"bit rung index out of range 0..{len(self.bits) - 1}: {bi.tolist()}")
        if ri.min() < 0 or ri.max() >= len(self.ranks):
            raise QRBenchError(f"rank rung index out of range 0..{len(self.ranks) - 1}: {ri.tolist()}")
        return QRConfig(bits=self._bits_arr[bi].tolist(), ranks=self._ranks_arr[ri].tolist())

    # -- encoding ----------------------------------------------------------------------------------------
    def _encode_indices(self, bit_idx: np.ndarray, rank_idx: np.ndarray) -> np.ndarray:
        nb, nr = len(self.bits), len(self.ranks)
        # A one-rung ladder carries no information; encode it as 0 rather than divide by zero.
        qb = bit_idx / (nb - 1) if nb > 1 else np.zeros_like(bit_idx, dtype=float)
        qr = rank_idx / (nr - 1) if nr > 1 else np.zeros_like(rank_idx, dtype=float)
        cov_b = (np.eye(nb, dtype=bool)[bit_idx].any(axis=1)).sum(axis=1) / nb
        cov_r = (np.eye(nr, dtype=bool)[rank_idx].any(axis=1)).sum(axis=1) / nr
        return np.concatenate([qb, qr, cov_b[:, None], cov_r[:, None]], axis=1).astype(np.float64)

    def encode(self, cfg: QRConfig) -> np.ndarray:
        """The 2L+2 ordinal encoding, every value in [0, 1].

        Features: the scaled bit rung position ``i / (n_bit_rungs - 1)`` of every block, then the scaled rank
        rung position of every block, then bit coverage (distinct bit rungs used / bit rungs) and rank
        coverage (distinct rank rungs used / rank rungs).
        """
        return self._encode_indices(self.bit_index(cfg)[None, :], self.rank_index(cfg)[None, :])[0]

    def encode_batch(self, cfgs: Sequence[QRConfig]) -> np.ndarray:
        """:meth:`encode` of every configuration, shape (n, 2L+2)."""
        if len(cfgs) == 0:
            return np.zeros((0, self.n_features))
        bit_idx = np.stack([self.bit_index(c) for c in cfgs])
        rank_idx = np.stack([self.rank_index(c) for c in cfgs])
        return self._encode_indices(bit_idx, rank_idx)

    def encode_indices(self, bit_idx: np.ndarray, rank_idx: np.ndarray) -> np.ndarray:
        """:meth:`encode_batch` straight from rung-index arrays of shape (n, L), without building configs."""
        return self._encode_indices(np.atleast_2d(bit_idx), np.atleast_2d(rank_idx))

    # -- neighbourhood -----------------------------------------------------------------------------------
    def neighbours(self, cfg: QRConfig) -> list[QRConfig]:
        """Every configuration one atomic edit away: one block's bits or rank moved one rung.

        Order is deterministic: for each block in turn, bits down, bits up, rank down, rank up.
        """
        bi, ri = self.bit_index(cfg), self.rank_index(cfg)
        out: list[QRConfig] = []
        for l in range(self.n_blocks):
            for axis, idx, n_rungs in (("bits", bi, len(self.bits)), ("ranks", ri, len(self.ranks))):
                for step in (-1, 1):
                    if 0 <= idx[l] + step < n_rungs:
                        moved = idx.copy()
                        moved[l] += step
                        out.append(self.from_indices(moved, ri) if axis == "bits" else self.from_indices(bi, moved))
        return out

    def distance(self, a: QRConfig, b: QRConfig) -> int:
        """Number of atomic edits between ``a`` and ``b``: the L1 distance of their rung indices."""
        return int(
            np.abs(self.bit_index(a) - self.bit_index(b)).sum() + np.abs(self.rank_index(a) - self.rank_index(b)).sum()
        )

    # -- parsing -----------------------------------------------------------------------------------------
    @staticmethod
    def parse_ladder_values(text: str, n_blocks: int, kind: str) -> tuple[int, ...]:
        """Parse ``"4"`` (all blocks) or ``"4,4,2,..."`` (one value per block) into ``n_blocks`` ints.

        ``kind`` ("bits" or "ranks") only names the option in error messages. Ladder membership is checked
        later by :meth:`config`.
        """
        parts = [p.strip() for p in str(text).split(",")]
        if not all(re.fullmatch(r"[+-]?\d+", p) for p in parts):
            raise QRBenchError(
                f"cannot parse {kind} {text!r}; give one integer for all blocks or {n_blocks} comma-separated integers"
            )
        values = tuple(int(p) for p in parts)
        if len(values) == 1:
            return values * n_blocks
        if len(values) != n_blocks:
            raise QRBenchError(
                f"{kind} {text!r} has {len(values)} values; give 1 (all blocks) or {n_blocks} (one per block)"
            )
        return values
