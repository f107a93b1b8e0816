"""HQQ (half-quadratic quantization): 1-8 bits, groupwise scale and zero, optimised zero points.

transformers 5.x cannot load through ``HqqConfig`` (it raises ``NotImplementedError``), so layers are
replaced after loading. Codes are bit-packed (2 and 4 bits in uint8, 3 bits ten to an int32); scale and zero
live in the layer's ``meta`` dict, not as buffers. peft wraps such layers as ``HqqLoraLinear``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from qra_bench.quant.base import QuantBackend

if TYPE_CHECKING:
    from hqq.core.quantize import HQQLinear


class HqqBackend(QuantBackend):
    name = "hqq"
    supported_bits = (1, 2, 3, 4, 8)

    def quantize_linear(self, linear: nn.Linear, bits: int) -> nn.Module:
        from hqq.core.quantize import BaseQuantizeConfig, HQQLinear

        config = BaseQuantizeConfig(nbits=bits, group_size=self.settings.group_size)
        if not self.settings.hqq_optimize:
            config["weight_quant_params"]["optimize"] = False
        device = linear.weight.device
        return HQQLinear(
            linear, quant_config=config, compute_dtype=linear.weight.dtype, device=str(device), del_orig=True
        )

    def dequantized_weight(self, module: nn.Module) -> torch.Tensor:
        layer = cast("HQQLinear", module)  # hqq is untyped; dequantize() and meta are HQQLinear's
        return layer.dequantize().reshape(layer.meta["shape"])
