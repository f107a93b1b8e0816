"""torchao ``IntxWeightOnlyConfig``: 1-8 bit integer weights, groupwise scales (and zero points).

On CPU torchao keeps the codes unpacked, one int8 per weight (``IntxUnpackedToInt8Tensor``); the memory
model accounts for that layout. peft wraps such layers as ``TorchaoLoraLinear``.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from qra_bench.errors import QRBenchError
from qra_bench.quant.base import QuantBackend


class TorchaoBackend(QuantBackend):
    name = "torchao"
    supported_bits = (1, 2, 3, 4, 5, 6, 7, 8)

    def quantize_linear(self, linear: nn.Linear, bits: int) -> nn.Module:
        from torchao.quantization import IntxWeightOnlyConfig, MappingType, PerGroup, quantize_

        try:
            mapping = MappingType[self.settings.mapping.upper()]
        except KeyError:
            raise QRBenchError(
                f"unknown torchao mapping {self.settings.mapping!r}; use symmetric_no_clipping_err, symmetric or asymmetric"
            ) from None
        config = IntxWeightOnlyConfig(
            weight_dtype=getattr(torch, f"int{bits}"),
            granularity=PerGroup(self.settings.group_size),
            mapping_type=mapping,
        )
        # quantize_ works on a module tree; a one-element Sequential lets it swap the weight in place.
        holder = nn.Sequential(linear)
        quantize_(holder, config)
        return holder[0]

    def dequantized_weight(self, module: nn.Module) -> torch.Tensor:
        weight = cast(torch.Tensor, module.weight)  # a torchao tensor subclass; torch types it Tensor | Module
        return weight.dequantize() if hasattr(weight, "dequantize") else weight.detach()
