"""Quantization backends behind one interface, applied block by block."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence, cast

import torch
from torch import nn

from qra_bench.errors import QRBenchError
from qra_bench.quant.quiet import quiet_stack
from qra_bench.quant.base import (
    BLOCK_LINEARS,
    UNQUANTIZED,
    QuantBackend,
    QuantSettings,
    block_linear_modules,
    decoder_blocks,
)
from qra_bench.quant.storage import storage_bytes

QUANT_BACKENDS = ("torchao", "hqq", "bnb")


def get_backend(settings: QuantSettings) -> QuantBackend:
    """The backend named by ``settings.backend``."""
    if settings.backend == "torchao":
        from qra_bench.quant.torchao_backend import TorchaoBackend

        return TorchaoBackend(settings)
    if settings.backend == "hqq":
        from qra_bench.quant.hqq_backend import HqqBackend

        return HqqBackend(settings)
    if settings.backend == "bnb":
        from qra_bench.quant.bnb_backend import BnbBackend

        return BnbBackend(settings)
    raise QRBenchError(f"unknown quantization backend {settings.backend!r}; choose one of {list(QUANT_BACKENDS)}")


@dataclass(frozen=True)
class QuantReport:
    """What quantizing a model did.

    Attributes
    ----------
    recon_error : relative Frobenius error ||W_q - W|| / ||W|| over all block linears together.
    block_recon_error : the same per block (0 for unquantized blocks).
    seconds : wall time of quantization (s).
    """

    recon_error: float
    block_recon_error: tuple[float, ...]
    seconds: float


@torch.no_grad()
def quantize_blocks(model: nn.Module, bits: Sequence[int], settings: QuantSettings) -> QuantReport:
    """Quantize the seven linears of every decoder block ``l`` to ``bits[l]`` in place (16 = leave as is)."""
    blocks = decoder_blocks(model)
    if len(bits) != len(blocks):
        raise QRBenchError(f"config has {len(bits)} blocks but the model has {len(blocks)}")
    with quiet_stack():  # importing a backend prints known-harmless notices
        backend = get_backend(settings)
    backend.check_bits(bits)
    t0 = time.perf_counter()
    err_total, norm_total, per_block = 0.0, 0.0, []
    for block, b in zip(blocks, bits):
        err_b, norm_b = 0.0, 0.0
        for name, (parent, attr, module) in block_linear_modules(block).items():
            linear = cast(nn.Linear, module)
            w = linear.weight.detach().float()
            norm_b += float(w.pow(2).sum())
            if b == UNQUANTIZED:
                continue
            if linear.in_features % settings.group_size:
                raise QRBenchError(
                    f"group size {settings.group_size} does not divide {name}'s input size {linear.in_features}"
                )
            reference = w.clone()
            with quiet_stack():
                quantized = backend.quantize_linear(linear, b)
            setattr(parent, attr, quantized)
            err_b += float((backend.dequantized_weight(quantized).float() - reference).pow(2).sum())
        per_block.append((err_b / norm_b) ** 0.5 if norm_b else 0.0)
        err_total += err_b
        norm_total += norm_b
    return QuantReport(
        recon_error=(err_total / norm_total) ** 0.5 if norm_total else 0.0,
        block_recon_error=tuple(per_block),
        seconds=time.perf_counter() - t0,
    )


__all__ = [
    "QUANT_BACKENDS",
    "BLOCK_LINEARS",
    "QuantBackend",
    "QuantReport",
    "QuantSettings",
    "get_backend",
    "quantize_blocks",
    "storage_bytes",
    "decoder_blocks",
    "block_linear_modules",
]
