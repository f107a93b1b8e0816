"""One interface for every quantization backend: replace a block's linear layers in place.

A backend turns one ``nn.Linear`` into a quantized module at a given bit width; :func:`quantize_blocks`
applies it block by block following a config's bits. Bits 16 leaves a block unquantized. Which bit widths a
backend supports is part of its interface, so a bad request fails before any weight is touched.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Optional, Sequence, cast

import torch
from torch import nn

from qra_bench.errors import QRBenchError

# The seven linears of a LLaMA/Qwen2 decoder block, in a fixed order.
BLOCK_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
UNQUANTIZED = 16


@dataclass(frozen=True)
class QuantSettings:
    """How weights are quantized (one setting for every block; bits come from the config).

    Parameters
    ----------
    backend : "torchao" (intx, 1-8 bits), "hqq" (1-8 bits) or "bnb" (4-bit NF4/FP4, 8-bit int8).
    group_size : weights per scale (and zero point), along the input dimension.
    mapping : torchao only: "symmetric_no_clipping_err" (the default: the scale maps the group's extreme
        weight exactly onto the integer grid, so small weights round to zero; at 2 bits that is what makes
        quantization hurt the tiny base as it hurts real LLMs), "symmetric" (absmax spread over the full
        signed range, clipping one side) or "asymmetric" (min/max with a zero point).
    hqq_optimize : HQQ's half-quadratic zero/scale optimisation (False = plain min/max rounding).
    bnb_quant_type : "nf4" or "fp4" for 4-bit bitsandbytes.
    bnb_double_quant : quantize the NF4 absmax statistics too.
    memory_layout : layout budgets charge (``qra_bench.memory`` backends); None = the backend's own, with
        torchao charged as bit-packed (see :func:`qra_bench.memory.storage_layout`).
    """

    backend: str = "torchao"
    group_size: int = 128
    mapping: str = "symmetric_no_clipping_err"
    hqq_optimize: bool = True
    bnb_quant_type: str = "nf4"
    bnb_double_quant: bool = False
    memory_layout: Optional[str] = None


class QuantBackend(abc.ABC):
    """Quantizes single linear layers; stateless apart from its settings."""

    name: str = ""
    supported_bits: tuple[int, ...] = ()

    def __init__(self, settings: QuantSettings):
        self.settings = settings

    def check_bits(self, bits: Sequence[int]) -> None:
        """Raise a user error if any bit width is neither supported nor 16 (unquantized)."""
        bad = sorted({b for b in bits if b != UNQUANTIZED and b not in self.supported_bits})
        if bad:
            raise QRBenchError(
                f"backend {self.name!r} cannot quantize to {bad} bits; it supports {list(self.supported_bits)} (and 16 = unquantized)"
            )

    @abc.abstractmethod
    def quantize_linear(self, linear: nn.Linear, bits: int) -> nn.Module:
        """Return a quantized replacement for ``linear`` (whose weight it may free)."""

    @abc.abstractmethod
    def dequantized_weight(self, module: nn.Module) -> torch.Tensor:
        """The weight a quantized module computes with, as a dense float tensor (out, in)."""


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The decoder blocks of a LLaMA-style causal LM (``model.model.layers``), peft-wrapped or not."""
    inner = model
    for attr in ("base_model", "model"):
        # peft: PeftModel.base_model (LoraModel).model (the causal LM); then causal LM .model (the decoder)
        while hasattr(inner, attr) and not hasattr(inner, "layers"):
            inner = getattr(inner, attr)
    if not hasattr(inner, "layers"):
        raise QRBenchError(
            f"{type(model).__name__} has no decoder blocks at .model.layers; only LLaMA-style models are supported"
        )
    return cast(nn.ModuleList, inner.layers)  # torch types dynamic submodules as Tensor | Module


def block_linear_modules(block: nn.Module) -> dict[str, tuple[nn.Module, str, nn.Module]]:
    """Map each of the seven linear names to (parent module, attribute, module)."""
    out: dict[str, tuple[nn.Module, str, nn.Module]] = {}
    # torch types dynamic submodules as Tensor | Module
    parents = (("self_attn", cast(nn.Module, block.self_attn)), ("mlp", cast(nn.Module, block.mlp)))
    for parent_name, parent in parents:
        for name in BLOCK_LINEARS:
            if hasattr(parent, name):
                out[name] = (parent, name, getattr(parent, name))
    if len(out) != len(BLOCK_LINEARS):
        missing = sorted(set(BLOCK_LINEARS) - set(out))
        raise QRBenchError(f"decoder block lacks linear layers {missing}")
    return out
