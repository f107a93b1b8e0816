"""Memory of a configuration, in bytes: the only module in qra-bench that knows bytes.

:class:`MemoryModel` counts every term of LoRA fine-tuning a block-wise quantized LLaMA-family model: packed
weight codes, quantization metadata, blocks left in 16 bits, norms and biases, embeddings, the LM head, LoRA
adapters, their gradients and optimizer states, and an activation estimate. Every term is additive over
blocks, so the model precomputes two small tables (bytes of block ``l`` at bit rung ``i``; at rank rung ``j``)
and evaluates millions of configurations as numpy sums (:meth:`MemoryModel.total_bytes_batch`).

Budgets (:func:`parse_budget`), feasibility and the greedy :meth:`MemoryModel.repair` live here too, so
every optimizer shares one definition of "fits".

The byte layout of each quantization backend is one small function (``*_layout``), written from the tensors
the libraries really store (torchao 0.18, hqq 0.2.8, bitsandbytes 0.50) and proven byte-exact against them
by ``tests/test_memory_real.py``; a library that changes its layout is corrected in one place.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from qra_bench.arch import ArchSpec, list_presets, load_arch
from qra_bench.errors import InfeasibleBudgetError, QRBenchError
from qra_bench.space import DEFAULT_BITS, DEFAULT_RANKS, QRConfig, SearchSpace

__all__ = [
    "BACKENDS",
    "Budget",
    "MemoryBreakdown",
    "MemoryModel",
    "MemorySettings",
    "TERMS",
    "activation_bytes",
    "bnb_layout",
    "formula_layout",
    "hqq_layout",
    "lora_bytes",
    "memory_report",
    "method_formula_bytes",
    "parse_budget",
    "supported_bits",
    "torchao_layout",
]

UNQUANTIZED_BITS = 16
OPTIMIZER_STATES = {"adamw": 2, "sgd": 0}  # states kept per trainable parameter
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
WEIGHTS_AND_ADAPTERS: tuple[str, ...] = ("quantized_weights", "quant_metadata", "unquantized_block_weights", "lora_adapters")


# ---------------------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------------------
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
        if self.backend not in BACKENDS:
            raise QRBenchError(f"unknown backend {self.backend!r}; allowed: {', '.join(BACKENDS)}")
        if self.optimizer not in OPTIMIZER_STATES:
            raise QRBenchError(f"unknown optimizer {self.optimizer!r}; allowed: {', '.join(OPTIMIZER_STATES)}")
        for name in ("group_size", "weight_dtype_bytes", "meta_dtype_bytes", "lora_dtype_bytes", "grad_dtype_bytes",
                     "optimizer_state_bytes", "batch_size", "seq_len", "activation_dtype_bytes", "bnb_blocksize"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise QRBenchError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
        z = self.zero_point_bytes
        if z is not None and (isinstance(z, bool) or not isinstance(z, (int, np.integer)) or z < 1):
            raise QRBenchError(f"zero-point-bytes must be a positive integer or None, got {z!r}")

    def zero_bytes(self, backend_default: int) -> int:
        """Bytes of one zero point: ``zero_point_bytes`` if set, else the backend's ``backend_default``."""
        return backend_default if self.zero_point_bytes is None else int(self.zero_point_bytes)


# ---------------------------------------------------------------------------------------------------------
# Backend layouts: (n_in, n_out, bits, settings) -> (code_bytes, meta_bytes) of one quantized linear weight.
# Only called for bits < 16; 16 bits is "unquantized" for every backend (see _linear_weight_bytes).
# meta_bytes holds everything a quantized layer stores besides its codes, per-layer constants included (e.g.
# bitsandbytes' NF4 code book), so every term stays additive over layers and blocks.
# ---------------------------------------------------------------------------------------------------------
def _groups(n_weights: int, group_size: int) -> int:
    return -(-n_weights // group_size)


def formula_layout(n_in: int, n_out: int, bits: int, s: MemorySettings) -> tuple[int, int]:
    """The method's reference layout: codes ``ceil(W * q / 8)`` bytes; a scale and a zero per group of ``g``."""
    w = n_in * n_out
    return -(-w * bits // 8), _groups(w, s.group_size) * (s.meta_dtype_bytes + s.zero_bytes(s.meta_dtype_bytes))


def hqq_layout(n_in: int, n_out: int, bits: int, s: MemorySettings) -> tuple[int, int]:
    """HQQ (``axis=1``): the weight is viewed as ``R = W / g`` rows of ``g`` codes and packed along the rows.

    8, 4, 2, 1 bits pack ``8 / bits`` rows into one uint8 row: ``R * bits / 8`` rows of ``g`` bytes (HQQ needs
    ``R`` divisible by ``8 / bits``). 3 bits pads ``R`` up to a multiple of 10 and packs ten rows into one
    int32 row: ``ceil(R / 10)`` rows of ``g`` int32 (a 256x512 weight, g=128: ``W_q`` is (103, 128) int32).
    Metadata: one scale and one zero per row, both in the compute dtype (``meta_dtype_bytes``; HQQ's default
    leaves them unquantized), kept in the layer's ``meta`` dict.
    """
    w = n_in * n_out
    g = s.group_size
    rows = _groups(w, g)
    if bits == 3:
        codes = -(-rows // 10) * g * 4
    elif bits in (1, 2, 4, 8):
        codes = -(-rows * bits // 8) * g
    else:
        raise QRBenchError(f"backend 'hqq' cannot store {bits}-bit weights; allowed bits: 1, 2, 3, 4, 8, 16")
    return codes, rows * (s.meta_dtype_bytes + s.zero_bytes(s.meta_dtype_bytes))


TORCHAO_ZERO_POINT_BYTES = 1  # IntxUnpackedToInt8Tensor.zero_point is int8


def torchao_layout(n_in: int, n_out: int, bits: int, s: MemorySettings) -> tuple[int, int]:
    """torchao IntxWeightOnly on CPU (``IntxUnpackedToInt8Tensor``): ``qdata`` is one int8 per weight whatever
    the bit width (no sub-byte packing).

    Metadata: per group a ``scale`` in the weight dtype (``meta_dtype_bytes``) and an int8 ``zero_point``
    (1 byte; stored even for symmetric mappings).
    """
    if not 1 <= bits <= 8:
        raise QRBenchError(f"backend 'torchao' cannot store {bits}-bit weights; allowed bits: 1..8, 16")
    w = n_in * n_out
    return w, _groups(w, s.group_size) * (s.meta_dtype_bytes + s.zero_bytes(TORCHAO_ZERO_POINT_BYTES))


BNB_CODE_BOOK_BYTES = 16 * 4  # the 16-entry float32 NF4/FP4 quant_map, one copy per Linear4bit
BNB_NESTED_BLOCKSIZE = 256  # double quantization: absmax values per nested float32 absmax
BNB_NESTED_CODE_BOOK_BYTES = 256 * 4  # the 256-entry float32 dynamic map of the nested quantization


def bnb_layout(n_in: int, n_out: int, bits: int, s: MemorySettings) -> tuple[int, int]:
    """bitsandbytes: NF4/FP4 ``Linear4bit`` (4 bits) or LLM.int8 ``Linear8bitLt`` (8 bits).

    4 bits: two codes per uint8, a float32 absmax per block of ``bnb_blocksize`` weights, and the layer's own
    16-entry float32 code book (``quant_map``, a per-layer constant). With double quantization each absmax
    is one uint8 instead, plus a float32 absmax per 256 blocks, the 256-entry float32 nested code book and a
    float32 ``offset`` scalar, all per layer. 8 bits: one int8 per weight and a float32 scale (``SCB``) per
    output row. The statistics are float32 whatever ``meta_dtype_bytes`` says.
    """
    w = n_in * n_out
    if bits == 4:
        n_abs = _groups(w, s.bnb_blocksize)
        if s.bnb_double_quant:
            meta = n_abs * 1 + _groups(n_abs, BNB_NESTED_BLOCKSIZE) * 4 + BNB_NESTED_CODE_BOOK_BYTES + 4
        else:
            meta = n_abs * 4
        return -(-w // 2), meta + BNB_CODE_BOOK_BYTES
    if bits == 8:
        return w, n_out * 4
    raise QRBenchError(f"backend 'bnb' cannot store {bits}-bit weights; allowed bits: 4, 8, 16")


BACKENDS: dict[str, Callable[[int, int, int, MemorySettings], tuple[int, int]]] = {
    "formula": formula_layout,
    "hqq": hqq_layout,
    "torchao": torchao_layout,
    "bnb": bnb_layout,
}
_SUPPORTED_BITS: dict[str, tuple[int, ...]] = {
    "formula": tuple(range(1, 17)),
    "hqq": (1, 2, 3, 4, 8, 16),
    "torchao": (1, 2, 3, 4, 5, 6, 7, 8, 16),
    "bnb": (4, 8, 16),
}


def storage_layout(quant: "Mapping[str, object] | object") -> str:
    """The memory layout that budgets charge for a quantizer's settings (a ``QuantSettings`` or its JSON dict).

    ``memory_layout`` when set, else the backend's own layout, except torchao: its CPU kernels keep the
    codes unpacked, one int8 per weight, so every width from 1 to 8 bits would cost the same byte and a budget
    could never trade bits for rank. Its packed intx formats, like HQQ and every deployment of the same codes,
    store ``b`` bits per weight, so torchao is charged with the packed reference layout (``"formula"``). The
    storage a trial really allocated is still recorded per row (``mem_measured_param_bytes``).
    """
    get = quant.get if isinstance(quant, Mapping) else (lambda key, default=None: getattr(quant, key, default))
    layout = get("memory_layout") or get("backend", "hqq")
    return "formula" if layout == "torchao" and not get("memory_layout") else str(layout)


def supported_bits(backend: str) -> tuple[int, ...]:
    """Bit widths ``backend`` can store (16 = unquantized)."""
    if backend not in _SUPPORTED_BITS:
        raise QRBenchError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    return _SUPPORTED_BITS[backend]


def _linear_weight_bytes(n_in: int, n_out: int, bits: int, s: MemorySettings) -> tuple[int, int, int]:
    """(codes, metadata, unquantized) bytes of one linear weight at ``bits``."""
    if bits == UNQUANTIZED_BITS:
        return 0, 0, n_in * n_out * s.weight_dtype_bytes
    codes, meta = BACKENDS[s.backend](n_in, n_out, bits, s)
    return codes, meta, 0


def lora_bytes(n_in: int, n_out: int, rank: int, s: MemorySettings) -> tuple[int, int, int]:
    """(adapter, gradient, optimizer-state) bytes of a rank-``rank`` LoRA on one linear (A: r x in, B: out x r)."""
    params = rank * (n_in + n_out)
    return (params * s.lora_dtype_bytes, params * s.grad_dtype_bytes,
            params * OPTIMIZER_STATES[s.optimizer] * s.optimizer_state_bytes)


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


def method_formula_bytes(arch: ArchSpec, cfg: QRConfig, group_size: int = 128) -> int:
    """The method's reference M(C), literally, bytes: per block ``|W| q/8 + (|A|+|B|) 2 + ceil(|W|/g) 2 * 2``.

    Charges group metadata and ``q/8`` bytes per weight even at 16 bits, as the reference does; kept for
    comparison with the full count only.
    """
    w = arch.block_linear_params()
    ab_per_rank = sum(lin.in_features + lin.out_features for lin in arch.block_linears())
    return sum(-(-w * q // 8) + ab_per_rank * r * 2 + _groups(w, group_size) * 2 * 2 for q, r in zip(cfg.bits, cfg.ranks))


# ---------------------------------------------------------------------------------------------------------
# Breakdown
# ---------------------------------------------------------------------------------------------------------
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
        lines.append(f"{'weights_and_adapters':<{width}}{wa:>18,}  {human_bytes(wa):>12}"
                     "  (quantized_weights + quant_metadata + unquantized_block_weights + lora_adapters)")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Budgets
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    """A memory budget, bytes. ``reference`` is the configuration whose total defines a named budget, and
    ``fraction`` the multiple of it (``0.5xfp16-lora``); both unset for absolute sizes."""

    name: str
    bytes: int
    reference: Optional[QRConfig] = None
    fraction: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.bytes, bool) or not isinstance(self.bytes, (int, np.integer)) or self.bytes < 1:
            raise QRBenchError(f"budget {self.name!r} must be a positive number of bytes, got {self.bytes!r}")
        object.__setattr__(self, "bytes", int(self.bytes))


BUDGET_FORMS = ("uniform-<b>bit (e.g. uniform-4bit), fp16-lora, <x>xfp16-lora (e.g. 0.5xfp16-lora), "
                "or a size: 3.5GiB, 800MiB, 2GB, 123456 (bytes)")
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?|[+-]?(?:nan|inf|infinity)"


def _positive_finite(text: str, number: str) -> float:
    value = float(number)
    if not math.isfinite(value) or value <= 0:
        raise QRBenchError(f"budget {text!r} must be positive and finite; allowed: {BUDGET_FORMS}")
    return value


def parse_budget(text: str, model: "MemoryModel") -> Budget:
    """Parse a named or absolute budget into bytes for ``model``'s architecture and settings.

    Named budgets are the total memory of a uniform configuration (rank 16, or the largest rank of the
    ladder if 16 is not on it): ``uniform-<b>bit``, ``fp16-lora`` (16 bits), ``<x>xfp16-lora`` (a fraction
    ``x`` of fp16-lora). Absolute sizes take B, KB, MB, GB, TB (powers of 10) or KiB, MiB, GiB, TiB.
    """
    raw = str(text).strip()
    low = raw.lower()
    m_uniform = re.fullmatch(r"uniform-(\d+)bits?", low)
    m_frac = re.fullmatch(rf"({_NUMBER})\s*x\s*fp16(?:-lora)?", low)
    m_size = re.fullmatch(rf"({_NUMBER})\s*([a-z]*)", low)
    if m_uniform or low == "fp16-lora" or m_frac:
        bits = int(m_uniform.group(1)) if m_uniform else UNQUANTIZED_BITS
        if not 1 <= bits <= UNQUANTIZED_BITS:
            raise QRBenchError(f"budget {raw!r}: bit width {bits} out of range; allowed: 1..16")
        fraction = _positive_finite(raw, m_frac.group(1)) if m_frac else 1.0
        ref = model.reference_config(bits)
        total = model.breakdown(ref).total
        if not math.isfinite(total * fraction):
            raise QRBenchError(f"budget {raw!r} is too large; allowed: {BUDGET_FORMS}")
        return Budget(name=raw, bytes=max(1, int(total * fraction)), reference=ref, fraction=fraction)
    if m_size and m_size.group(2) in _UNITS:
        value = _positive_finite(raw, m_size.group(1)) * _UNITS[m_size.group(2)]
        if not math.isfinite(value):
            raise QRBenchError(f"budget {raw!r} is too large; allowed: {BUDGET_FORMS}")
        if value < 1:
            raise QRBenchError(f"budget {raw!r} is less than one byte; allowed: {BUDGET_FORMS}")
        return Budget(name=raw, bytes=int(value))
    raise QRBenchError(f"cannot parse budget {raw!r}; allowed: {BUDGET_FORMS}")


def _budget_bytes(budget: Budget | int) -> int:
    if isinstance(budget, Budget):
        return budget.bytes
    if isinstance(budget, (int, np.integer)) and not isinstance(budget, bool) and budget > 0:
        return int(budget)
    raise QRBenchError(f"budget must be a Budget or a positive number of bytes, got {budget!r}")


# ---------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------
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

    def __init__(self, arch: ArchSpec, settings: MemorySettings | None = None, space: SearchSpace | None = None) -> None:
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
        return np.sum([_linear_weight_bytes(lin.in_features, lin.out_features, bits, self.settings)
                       for lin in self._linears], axis=0, dtype=np.int64)

    def _block_rank_bytes(self, rank: int) -> np.ndarray:
        """(adapters, gradients, optimizer states) bytes of one block's LoRAs at ``rank``."""
        return np.sum([lora_bytes(lin.in_features, lin.out_features, rank, self.settings)
                       for lin in self._linears], axis=0, dtype=np.int64)

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
            per_block.append({
                "block": l, "bits": b, "rank": r, "quantized_weights": codes, "quant_metadata": meta,
                "unquantized_block_weights": unq, "block_norms_and_biases": extra, "lora_adapters": ad,
                "lora_gradients": gr, "optimizer_state": opt,
                "total": codes + meta + unq + extra + ad + gr + opt,
            })
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
        return (self.bit_cost[self._arange, bit_idx].sum(axis=1) + self.rank_cost[self._arange, rank_idx].sum(axis=1)
                + self.constant)

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
        imp = np.stack([self._importance(importance_q, "importance_q"),
                        self._importance(importance_r, "importance_r")], axis=1) + REPAIR_EPS  # (L, 2)
        ar = self._arange
        while total > limit:
            # saved[l, axis]: bytes freed by lowering block l one rung on that axis (0 where already lowest).
            saved = np.stack([
                self.bit_cost[ar, bi] - self.bit_cost[ar, np.maximum(bi - 1, 0)],
                self.rank_cost[ar, ri] - self.rank_cost[ar, np.maximum(ri - 1, 0)],
            ], axis=1)
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


# ---------------------------------------------------------------------------------------------------------
# CLI report
# ---------------------------------------------------------------------------------------------------------
def _describe(values: Sequence[int]) -> str:
    if len(set(values)) == 1:
        return f"{values[0]} on all {len(values)} blocks"
    return ",".join(map(str, values))


def _presets_table() -> str:
    lines = [f"{'preset':<16}{'type':<8}{'blocks':>7}{'hidden':>8}{'parameters':>16}"]
    for name in list_presets():
        a = load_arch(name)
        lines.append(f"{name:<16}{a.model_type:<8}{a.n_blocks:>7}{a.hidden_size:>8}{a.total_params():>16,}")
    return "\n".join(lines)


def memory_report(
    arch: str = "tiny",
    bits: str | None = None,
    ranks: str | None = None,
    budget: str | None = None,
    backend: str = "hqq",
    group_size: int = 128,
    batch_size: int = 1,
    seq_len: int = 512,
    grad_checkpointing: bool = False,
    list_presets: bool = False,
) -> str:
    """The ``qra-bench memory`` report: the itemized bytes of a configuration or of a named budget.

    With ``bits``/``ranks`` (one value for all blocks or one per block; defaults 4 bits, rank 16) it itemizes
    that configuration, and, if ``budget`` is also given, says whether it fits. With only a named budget it
    itemizes the uniform configuration that defines the budget; with only an absolute budget, the largest
    configuration repaired to fit it.
    """
    if list_presets:
        return _presets_table()
    spec = load_arch(arch)
    settings = MemorySettings(backend=backend, group_size=group_size, batch_size=batch_size, seq_len=seq_len,
                              grad_checkpointing=grad_checkpointing)
    model = MemoryModel(spec, settings)
    space = model.space
    L = spec.n_blocks

    header = [
        f"architecture   {spec.name} ({spec.model_type}, {L} blocks, {spec.total_params():,} parameters)",
        f"settings       backend {backend}, group {group_size}, weights/metadata/LoRA {settings.weight_dtype_bytes}/"
        f"{settings.meta_dtype_bytes}/{settings.lora_dtype_bytes} B, grads {settings.grad_dtype_bytes} B, "
        f"{settings.optimizer} {settings.optimizer_state_bytes} B states, batch {batch_size} x {seq_len} tokens, "
        f"grad checkpointing {'on' if grad_checkpointing else 'off'}",
        f"ladders        bits {{{', '.join(map(str, space.bits))}}}, ranks {{{', '.join(map(str, space.ranks))}}}",
    ]
    parsed_budget = parse_budget(budget, model) if budget is not None else None
    note: list[str] = []
    if bits is not None or ranks is not None or parsed_budget is None:
        rank_default = 16 if 16 in space.ranks else space.ranks[-1]
        b = SearchSpace.parse_ladder_values(bits, L, "bits") if bits is not None else (4,) * L
        r = SearchSpace.parse_ladder_values(ranks, L, "ranks") if ranks is not None else (rank_default,) * L
        cfg = space.config(b, r)
        if parsed_budget is not None:
            total = model.total_bytes(cfg)
            verdict = "fits" if total <= parsed_budget.bytes else "does NOT fit"
            note.append(f"budget         {parsed_budget.name} = {parsed_budget.bytes:,} bytes ({human_bytes(parsed_budget.bytes)}): "
                        f"configuration {verdict} (margin {parsed_budget.bytes - total:+,} bytes)")
    elif parsed_budget.reference is not None:
        cfg = parsed_budget.reference
        frac = f"{parsed_budget.fraction:g} x the total of " if parsed_budget.fraction != 1.0 else "the total of "
        header.append(f"budget         {parsed_budget.name} = {parsed_budget.bytes:,} bytes ({human_bytes(parsed_budget.bytes)}): "
                      f"{frac}the configuration below")
    else:
        header.append(f"budget         {parsed_budget.name} = {parsed_budget.bytes:,} bytes ({human_bytes(parsed_budget.bytes)})")
        min_total = model.total_bytes(model.min_config())
        if min_total > parsed_budget.bytes:
            return "\n".join(header + [f"infeasible     the smallest configuration needs {min_total:,} bytes "
                                       f"({human_bytes(min_total)})"])
        cfg = model.repair(model.max_config(), parsed_budget)
        header.append("               below: the largest configuration repaired to fit (no importance priors)")

    bd = model.breakdown(cfg)
    header.append(f"configuration  bits {_describe(cfg.bits)} (avg {cfg.avg_bits:.2f}); "
                  f"ranks {_describe(cfg.ranks)} (avg {cfg.avg_rank:.2f})")
    formula = method_formula_bytes(spec, cfg, group_size)
    diff = (bd.weights_and_adapters - formula) / formula * 100
    footer = [f"{'reference M(C) formula':<27}{formula:>18,}  {human_bytes(formula):>12}  (reference M(C), weights and adapters; "
              f"{diff:+.1f}% vs weights_and_adapters)"]
    footer.append("activations is an estimate (qra_bench.memory.activation_bytes); trials record measured peak memory.")
    return "\n".join(header + [""] + [bd.format_table()] + footer + note)
