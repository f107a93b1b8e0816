"""The memory model: settings, the itemized breakdown of a configuration, batch totals, feasibility and the
greedy repair into a budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

import numpy as np

from qra_bench.arch import ArchSpec
from qra_bench.errors import InfeasibleBudgetError, QRBenchError
from qra_bench.memory.budgets import Budget, _budget_bytes, parse_budget
from qra_bench.memory.layouts import STORAGE_LAYOUTS, OPTIMIZER_STATES, _linear_weight_bytes, lora_bytes, supported_bits
from qra_bench.space import DEFAULT_BITS, DEFAULT_RANKS, QRConfig, SearchSpace

__all__ = [
    "MemoryBreakdown",
    "MemoryModel",
    "MemorySettings",
    "TERMS",
    "activation_bytes",
    "human_bytes",
    "solve_seq_len",
]

REPAIR_EPS = 1e-3  # keeps zero-importance blocks ordered by bytes saved instead of all tying at 0

#: The itemized terms of :class:`MemoryBreakdown`, in print order.
TERMS: tuple[str, ...] = (
    "quantized_weights",
    "quant_metadata",
    "unquantized_block_weights",
    "block_norms_and_biases",
    "embeddings",
    "final_norm",
    "rotary_tables",
    "lm_head",
    "lora_adapters",
    "lora_gradients",
    "optimizer_state",
    "activations",
)
#: The terms the method's reference formula M(C) covers (blocks' weights and adapters only).
WEIGHTS_AND_ADAPTERS: tuple[str, ...] = (
    "quantized_weights",
    "quant_metadata",
    "unquantized_block_weights",
    "lora_adapters",
)


@dataclass(frozen=True)
class MemorySettings:
    """How a configuration is stored and trained; every ``*_bytes`` is bytes per value.

    Parameters
    ----------
    backend
        Quantized weight layout: ``"formula"`` (the method's reference), ``"hqq"``, ``"torchao"`` or ``"bnb"``.
    group_size
        Weights per quantization group (one scale/zero pair each).
    weight_dtype_bytes
        Unquantized weights (16-bit blocks, embeddings, norms, biases, lm_head): 2 for fp16/bf16, 4 for fp32.
    meta_dtype_bytes
        One quantization scale, and one zero point too unless ``zero_point_bytes`` says otherwise (HQQ and
        torchao keep scales in the compute dtype, so set this to ``weight_dtype_bytes`` to describe them).
        bitsandbytes ignores it: its absmax statistics are always float32.
    zero_point_bytes
        One zero point, when it is stored in a different dtype from the scale; ``None`` (default) = the
        backend's own layout: ``meta_dtype_bytes`` for ``"formula"`` and ``"hqq"``, 1 for ``"torchao"``
        (int8 zero points, even for symmetric mappings). bitsandbytes has no zero points.
    lora_dtype_bytes, grad_dtype_bytes, optimizer_state_bytes
        One LoRA parameter, its gradient, one optimizer state value.
    optimizer
        ``"adamw"`` (2 states per trainable parameter) or ``"sgd"`` (none).
    batch_size, seq_len
        Training batch (sequences) and sequence length (tokens), for the activation estimate.
    grad_checkpointing
        Whether activations are recomputed per block in the backward pass.
    activation_dtype_bytes
        One saved activation value.
    bnb_double_quant, bnb_blocksize
        bitsandbytes NF4 options (nested quantization of absmax; weights per absmax block).
    """

    backend: str = "hqq"
    group_size: int = 128
    weight_dtype_bytes: int = 2
    meta_dtype_bytes: int = 2
    zero_point_bytes: Optional[int] = None
    lora_dtype_bytes: int = 2
    grad_dtype_bytes: int = 4
    optimizer: str = "adamw"
    optimizer_state_bytes: int = 4
    batch_size: int = 1
    seq_len: int = 512
    grad_checkpointing: bool = False
    activation_dtype_bytes: int = 2
    bnb_double_quant: bool = False
    bnb_blocksize: int = 64

    def __post_init__(self) -> None:
        if self.backend not in STORAGE_LAYOUTS:
            raise QRBenchError(f"unknown backend {self.backend!r}; allowed: {', '.join(STORAGE_LAYOUTS)}")
        if self.optimizer not in OPTIMIZER_STATES:
            raise QRBenchError(f"unknown optimizer {self.optimizer!r}; allowed: {', '.join(OPTIMIZER_STATES)}")
        for name in (
            "group_size",
            "weight_dtype_bytes",
            "meta_dtype_bytes",
            "lora_dtype_bytes",
            "grad_dtype_bytes",
            "optimizer_state_bytes",
            "batch_size",
            "seq_len",
            "activation_dtype_bytes",
            "bnb_blocksize",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise QRBenchError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
        z = self.zero_point_bytes
        if z is not None and (isinstance(z, bool) or not isinstance(z, (int, np.integer)) or z < 1):
            raise QRBenchError(f"zero-point-bytes must be a positive integer or None, got {z!r}")

    def zero_bytes(self, backend_default: int) -> int:
        """Bytes of one zero point: ``zero_point_bytes`` if set, else the backend's ``backend_default``."""
        return backend_default if self.zero_point_bytes is None else int(self.zero_point_bytes)


def activation_bytes(arch: ArchSpec, s: MemorySettings) -> int:
    """Estimate of the activations saved for the backward pass, bytes.

    An estimate, not a measurement (trials record measured peak memory separately). Per token and block a
    LLaMA block under LoRA training keeps roughly ``10 * hidden`` values (norm inputs and outputs, q/k/v,
    attention output, residuals, LoRA dropout inputs), ``3 * intermediate`` (gate, up, and their product)
    and ``n_heads * seq_len`` attention probabilities (eager attention). The loss adds float32 logits,
    ``batch * seq_len * vocab * 4``. Under gradient checkpointing only every block's input (``hidden`` per
    token) is kept, plus one block's full set while it is recomputed.
    """
    tokens = s.batch_size * s.seq_len
    per_token_block = 10 * arch.hidden_size + 3 * arch.intermediate_size + arch.n_heads * s.seq_len
    one_block = tokens * per_token_block * s.activation_dtype_bytes
    if s.grad_checkpointing:
        saved = arch.n_blocks * tokens * arch.hidden_size * s.activation_dtype_bytes + one_block
    else:
        saved = arch.n_blocks * one_block
    return saved + tokens * arch.vocab_size * 4


def solve_seq_len(arch: ArchSpec, settings: MemorySettings, offset: int) -> tuple[MemorySettings, int]:
    """Settings whose sequence length makes the memory model match the table, and the bytes still off.

    Trials do not record their sequence length, but it only enters the activation term, which is monotone in
    it; so the length that closes the gap (``offset`` bytes, table minus model) is found by bisection.
    """
    if offset == 0:
        return settings, 0
    target = activation_bytes(arch, settings) + offset
    lo, hi = 1, 1 << 20
    while lo < hi:
        mid = (lo + hi) // 2
        if activation_bytes(arch, replace(settings, seq_len=mid)) < target:
            lo = mid + 1
        else:
            hi = mid
    solved = replace(settings, seq_len=lo)
    left = target - activation_bytes(arch, solved)
    if left == 0:
        return solved, 0
    return settings, offset


def human_bytes(n: float) -> str:
    """``n`` bytes in GiB, MiB or KiB (two decimals), or plain bytes."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{int(n):,} B"


@dataclass(frozen=True)
class MemoryBreakdown:
    """Itemized memory of one configuration, bytes.

    ``terms`` maps every name of :data:`TERMS` (in that order) to bytes; ``per_block`` holds one dict per
    block with the block-dependent terms.
    """

    config: QRConfig
    terms: dict[str, int]
    per_block: list[dict[str, int]] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Every term, bytes."""
        return sum(self.terms.values())

    @property
    def weights_and_adapters(self) -> int:
        """Blocks' quantized codes, metadata, unquantized weights and LoRA adapters, bytes (the method's M(C))."""
        return sum(self.terms[t] for t in WEIGHTS_AND_ADAPTERS)

    def to_dict(self) -> dict:
        return {
            "config": {"bits": list(self.config.bits), "ranks": list(self.config.ranks)},
            "terms": dict(self.terms),
            "total": self.total,
            "weights_and_adapters": self.weights_and_adapters,
            "per_block": [dict(b) for b in self.per_block],
        }

    def format_table(self) -> str:
        """The terms, their total and the weights-and-adapters subtotal, in bytes and MiB/GiB."""
        rows = [(name, self.terms[name]) for name in TERMS]
        width = max(len(n) for n, _ in rows) + 2
        lines = [f"{'term':<{width}}{'bytes':>18}  {'size':>12}"]
        lines += [f"{n:<{width}}{v:>18,}  {human_bytes(v):>12}" for n, v in rows]
        lines.append("-" * (width + 32))
        lines.append(f"{'total':<{width}}{self.total:>18,}  {human_bytes(self.total):>12}")
        wa = self.weights_and_adapters
        lines.append(
            f"{'weights_and_adapters':<{width}}{wa:>18,}  {human_bytes(wa):>12}"
            "  (quantized_weights + quant_metadata + unquantized_block_weights + lora_adapters)"
        )
        return "\n".join(lines)


class MemoryModel:
    """Bytes of every configuration of ``space`` for ``arch`` trained under ``settings``.

    Parameters
    ----------
    arch
        Block and module shapes.
    settings
        Storage and training settings (default: :class:`MemorySettings`'s defaults, HQQ).
    space
        The ladders; default: :data:`~qra_bench.space.DEFAULT_BITS` restricted to what the backend can store,
        and ranks :data:`~qra_bench.space.DEFAULT_RANKS`.
    """

    def __init__(
        self, arch: ArchSpec, settings: MemorySettings | None = None, space: SearchSpace | None = None
    ) -> None:
        settings = settings or MemorySettings()
        allowed = supported_bits(settings.backend)
        if space is None:
            space = SearchSpace(arch.n_blocks, bits=tuple(b for b in DEFAULT_BITS if b in allowed), ranks=DEFAULT_RANKS)
        if space.n_blocks != arch.n_blocks:
            raise QRBenchError(f"search space has {space.n_blocks} blocks but {arch.name} has {arch.n_blocks}")
        bad = [b for b in space.bits if b not in allowed]
        if bad:
            raise QRBenchError(
                f"backend {settings.backend!r} cannot store bits {bad} of the ladder; allowed: {', '.join(map(str, allowed))}"
            )
        self.arch, self.settings, self.space = arch, settings, space
        self._linears = arch.block_linears()
        # Per-block rung tables. All blocks share shapes today, but per-block rows keep the door open for
        # per-block module shapes without changing any caller.
        L = arch.n_blocks
        self.bit_cost = np.array([[self._block_bits_bytes(b).sum() for b in space.bits]] * L, dtype=np.int64)
        self.rank_cost = np.array([[self._block_rank_bytes(r).sum() for r in space.ranks]] * L, dtype=np.int64)
        self.constant = int(sum(v for k, v in self._constant_terms().items()))
        self._arange = np.arange(L)

    # -- per-block terms ---------------------------------------------------------------------------------
    def _block_bits_bytes(self, bits: int) -> np.ndarray:
        """(codes, metadata, unquantized) bytes of one block's linears at ``bits``."""
        return np.asarray(  # np.sum over axis 0 of a 2-d list: an array, not a scalar
            np.sum(
                [_linear_weight_bytes(lin.in_features, lin.out_features, bits, self.settings) for lin in self._linears],
                axis=0,
                dtype=np.int64,
            )
        )

    def _block_rank_bytes(self, rank: int) -> np.ndarray:
        """(adapters, gradients, optimizer states) bytes of one block's LoRAs at ``rank``."""
        return np.asarray(  # np.sum over axis 0 of a 2-d list: an array, not a scalar
            np.sum(
                [lora_bytes(lin.in_features, lin.out_features, rank, self.settings) for lin in self._linears],
                axis=0,
                dtype=np.int64,
            )
        )

    def _constant_terms(self) -> dict[str, int]:
        a, s = self.arch, self.settings
        return {
            "block_norms_and_biases": a.n_blocks * a.block_extra_params() * s.weight_dtype_bytes,
            "embeddings": a.embedding_params() * s.weight_dtype_bytes,
            "final_norm": a.hidden_size * s.weight_dtype_bytes,
            # transformers keeps two float32 rotary tables (inv_freq, original_inv_freq) of head_dim/2 each.
            "rotary_tables": 2 * (a.head_dim // 2) * 4,
            "lm_head": a.lm_head_params() * s.weight_dtype_bytes,
            "activations": activation_bytes(a, s),
        }

    # -- configurations ----------------------------------------------------------------------------------
    def reference_config(self, bits: int) -> QRConfig:
        """Every block at ``bits`` and rank 16 (the largest rank of the ladder if 16 is not on it).

        Not validated against the bit ladder: budgets such as fp16-lora are defined outside it.
        """
        rank = 16 if 16 in self.space.ranks else self.space.ranks[-1]
        return QRConfig(bits=(bits,) * self.arch.n_blocks, ranks=(rank,) * self.arch.n_blocks)

    def min_config(self) -> QRConfig:
        return self.space.min_config()

    def max_config(self) -> QRConfig:
        return self.space.max_config()

    def breakdown(self, cfg: QRConfig) -> MemoryBreakdown:
        """Itemized bytes of ``cfg``. Works for any configuration of the right length, on the ladder or not."""
        if cfg.n_blocks != self.arch.n_blocks:
            raise QRBenchError(f"configuration has {cfg.n_blocks} blocks; {self.arch.name} has {self.arch.n_blocks}")
        extra = self.arch.block_extra_params() * self.settings.weight_dtype_bytes
        per_block = []
        for l, (b, r) in enumerate(zip(cfg.bits, cfg.ranks)):
            codes, meta, unq = (int(x) for x in self._block_bits_bytes(b))
            ad, gr, opt = (int(x) for x in self._block_rank_bytes(r))
            per_block.append(
                {
                    "block": l,
                    "bits": b,
                    "rank": r,
                    "quantized_weights": codes,
                    "quant_metadata": meta,
                    "unquantized_block_weights": unq,
                    "block_norms_and_biases": extra,
                    "lora_adapters": ad,
                    "lora_gradients": gr,
                    "optimizer_state": opt,
                    "total": codes + meta + unq + extra + ad + gr + opt,
                }
            )
        const = self._constant_terms()
        terms = {}
        for name in TERMS:
            if name in const:
                terms[name] = int(const[name])
            else:
                terms[name] = sum(blk[name] for blk in per_block)
        return MemoryBreakdown(config=cfg, terms=terms, per_block=per_block)

    def total_bytes(self, cfg: QRConfig) -> int:
        """Total bytes of ``cfg`` (a configuration of the space) from the precomputed tables."""
        bi, ri = self.space.bit_index(cfg), self.space.rank_index(cfg)
        return int(self.bit_cost[self._arange, bi].sum() + self.rank_cost[self._arange, ri].sum()) + self.constant

    def total_bytes_batch(self, bit_idx: np.ndarray, rank_idx: np.ndarray) -> np.ndarray:
        """Total bytes of ``n`` configurations given as rung indices of shape (n, L); int64 array (n,)."""
        bit_idx, rank_idx = np.atleast_2d(bit_idx), np.atleast_2d(rank_idx)
        return (
            self.bit_cost[self._arange, bit_idx].sum(axis=1)
            + self.rank_cost[self._arange, rank_idx].sum(axis=1)
            + self.constant
        )

    def budget(self, text: str) -> Budget:
        """:func:`parse_budget` for this model."""
        return parse_budget(text, self)

    def is_feasible(self, cfg: QRConfig, budget: Budget | int) -> bool:
        """Whether ``cfg``'s total bytes fit within ``budget``."""
        return self.total_bytes(cfg) <= _budget_bytes(budget)

    def _importance(self, values: Sequence[float] | np.ndarray | None, what: str) -> np.ndarray:
        if values is None:
            return np.zeros(self.arch.n_blocks)
        arr = np.asarray(values, dtype=float)
        if arr.shape != (self.arch.n_blocks,) or not np.all(np.isfinite(arr)):
            raise QRBenchError(f"{what} must be {self.arch.n_blocks} finite numbers, got shape {arr.shape}")
        return arr

    def repair(
        self,
        cfg: QRConfig,
        budget: Budget | int,
        importance_q: Sequence[float] | np.ndarray | None = None,
        importance_r: Sequence[float] | np.ndarray | None = None,
    ) -> QRConfig:
        """Greedily lower rungs until ``cfg`` fits ``budget``; deterministic, never raises a bit or rank.

        Each step applies the one-rung downgrade (a block's bits, or its rank, one rung down) with the smallest
        ``(importance of that block on that axis + 1e-3) / bytes saved``; ties go to the lower block index,
        then bits before rank. Moves that save no bytes (e.g. torchao's 8 -> 4 bits, both one byte per
        weight) are taken only when no saving move is left.

        Raises
        ------
        InfeasibleBudgetError
            If even the minimal configuration (all lowest rungs) exceeds the budget.
        """
        limit = _budget_bytes(budget)
        bi, ri = self.space.bit_index(cfg), self.space.rank_index(cfg)
        total = int(self.total_bytes_batch(bi, ri)[0])
        if total <= limit:
            return cfg
        min_total = self.total_bytes(self.min_config())
        if min_total > limit:
            raise InfeasibleBudgetError(
                f"budget {limit:,} bytes is below the smallest configuration of the space ({min_total:,} bytes: "
                f"bits {self.space.bits[0]}, rank {self.space.ranks[0]} everywhere)"
            )
        imp = (
            np.stack(
                [self._importance(importance_q, "importance_q"), self._importance(importance_r, "importance_r")], axis=1
            )
            + REPAIR_EPS
        )  # (L, 2)
        ar = self._arange
        while total > limit:
            # saved[l, axis]: bytes freed by lowering block l one rung on that axis (0 where already lowest).
            saved = np.stack(
                [
                    self.bit_cost[ar, bi] - self.bit_cost[ar, np.maximum(bi - 1, 0)],
                    self.rank_cost[ar, ri] - self.rank_cost[ar, np.maximum(ri - 1, 0)],
                ],
                axis=1,
            )
            movable = np.stack([bi > 0, ri > 0], axis=1)
            if not movable.any():  # unreachable when the min config fits; kept as a guard
                raise InfeasibleBudgetError(f"cannot fit {limit:,} bytes: every block is on its lowest rungs")
            useful = movable & (saved > 0)
            if useful.any():
                score = np.where(useful, imp / np.where(useful, saved, 1), np.inf)
                flat = int(np.argmin(score))  # row-major: first minimum = lowest block, then bits before rank
            else:
                flat = int(np.argmax(movable))
            l, axis = divmod(flat, 2)
            total -= int(saved[l, axis])
            if axis == 0:
                bi[l] -= 1
            else:
                ri[l] -= 1
        return self.space.from_indices(bi, ri)
