"""bitsandbytes: 4-bit NF4/FP4 (``Linear4bit``) and 8-bit int8 (``Linear8bitLt``), the QLoRA baselines.

bitsandbytes 0.50 on a CPU with avx512_bf16 repacks a ``Linear4bit`` weight in place during an ``eval()``
forward pass, after which gradients to its input silently stop, and it asserts ``N must be divisible by
block_n`` for output sizes not a multiple of 32. Turning ``support_avx512bf16_for_cpu`` off on every
``Linear4bit`` avoids both (tests train after an evaluation to prove it).
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from qra_bench.quant.base import QuantBackend


class BnbBackend(QuantBackend):
    name = "bnb"
    supported_bits = (4, 8)

    def quantize_linear(self, linear: nn.Linear, bits: int) -> nn.Module:
        import bitsandbytes as bnb

        weight = linear.weight.detach()
        has_bias = linear.bias is not None
        if bits == 4:
            module = bnb.nn.Linear4bit(
                linear.in_features,
                linear.out_features,
                bias=has_bias,
                compute_dtype=weight.dtype,
                quant_type=self.settings.bnb_quant_type,
                compress_statistics=self.settings.bnb_double_quant,
            )
            module.weight = bnb.nn.Params4bit(
                weight.cpu().clone(),
                requires_grad=False,
                quant_type=self.settings.bnb_quant_type,
                compress_statistics=self.settings.bnb_double_quant,
            )
            module.support_avx512bf16_for_cpu = False
        else:
            module = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, bias=has_bias, has_fp16_weights=False)
            module.weight = bnb.nn.Int8Params(weight.cpu().clone(), requires_grad=False, has_fp16_weights=False)
        if has_bias:
            module.bias = nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        return module.to(weight.device)  # moving to the device is what quantizes the weight

    def dequantized_weight(self, module: nn.Module) -> torch.Tensor:
        import bitsandbytes as bnb

        weight = module.weight
        if isinstance(weight, bnb.nn.Params4bit):
            linear = cast(bnb.nn.Linear4bit, module)
            return bnb.functional.dequantize_4bit(weight.data, weight.quant_state).reshape(
                linear.out_features, linear.in_features
            )
        int8 = cast(bnb.nn.Int8Params, weight)  # a Linear8bitLt's weight
        scb = cast(torch.Tensor, int8.SCB)  # the row scales, set when the weight was quantized
        return int8.data.float() * scb.float().unsqueeze(1) / 127.0
