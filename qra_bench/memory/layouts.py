"""Bytes of one linear weight per storage layout: the byte layout of each quantization backend (``*_layout``),
the bit widths each can store, the layout a quantizer's settings are charged with, and a LoRA's bytes.

Each layout is written from the tensors the libraries really store and proven byte-exact against them by
``tests/test_memory_real.py``; a library that changes its layout is corrected here, in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Mapping

from qra_bench.arch import ArchSpec
from qra_bench.errors import QRBenchError
from qra_bench.space import QRConfig

if TYPE_CHECKING:
    from qra_bench.memory.model import MemorySettings

__all__ = [
    "STORAGE_LAYOUTS",
    "bnb_layout",
    "formula_layout",
    "hqq_layout",
    "lora_bytes",
    "method_formula_bytes",
    "storage_layout",
    "supported_bits",
    "torchao_layout",
]

UNQUANTIZED_BITS = 16
OPTIMIZER_STATES = {"adamw": 2, "sgd": 0}  # states kept per trainable parameter


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


STORAGE_LAYOUTS: dict[str, Callable[[int, int, int, MemorySettings], tuple[int, int]]] = {
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
        raise QRBenchError(f"unknown backend {backend!r}; allowed: {', '.join(STORAGE_LAYOUTS)}")
    return _SUPPORTED_BITS[backend]


def _linear_weight_bytes(n_in: int, n_out: int, bits: int, s: MemorySettings) -> tuple[int, int, int]:
    """(codes, metadata, unquantized) bytes of one linear weight at ``bits``."""
    if bits == UNQUANTIZED_BITS:
        return 0, 0, n_in * n_out * s.weight_dtype_bytes
    codes, meta = STORAGE_LAYOUTS[s.backend](n_in, n_out, bits, s)
    return codes, meta, 0


def lora_bytes(n_in: int, n_out: int, rank: int, s: MemorySettings) -> tuple[int, int, int]:
    """(adapter, gradient, optimizer-state) bytes of a rank-``rank`` LoRA on one linear (A: r x in, B: out x r)."""
    params = rank * (n_in + n_out)
    return (
        params * s.lora_dtype_bytes,
        params * s.grad_dtype_bytes,
        params * OPTIMIZER_STATES[s.optimizer] * s.optimizer_state_bytes,
    )


def method_formula_bytes(arch: ArchSpec, cfg: QRConfig, group_size: int = 128) -> int:
    """The method's reference M(C), literally, bytes: per block ``|W| q/8 + (|A|+|B|) 2 + ceil(|W|/g) 2 * 2``.

    Charges group metadata and ``q/8`` bytes per weight even at 16 bits, as the reference does; kept for
    comparison with the full count only.
    """
    w = arch.block_linear_params()
    ab_per_rank = sum(lin.in_features + lin.out_features for lin in arch.block_linears())
    return sum(
        -(-w * q // 8) + ab_per_rank * r * 2 + _groups(w, group_size) * 2 * 2 for q, r in zip(cfg.bits, cfg.ranks)
    )
