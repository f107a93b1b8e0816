"""Frozen-weight dequantization cache for CPU LoRA training: dequantize once per trial, reuse every step.

LoRA never changes the base weights, yet every quantized layer dequantizes them again at every forward and
backward pass. On a CPU the quantizers' own forward is "dequantize, then a dense matmul", so this cache
computes that dense weight once (with the backend's own dequantization call, in the compute dtype) and
replays the same dense ops on it: the numbers are bit for bit those of the uncached path (tests prove it
per backend). Stored quantized tensors stay where they are, so measured storage is unchanged; the cache is
a plain attribute, never a parameter or buffer. On CUDA nothing is cached: the real quantized kernels run.

Per backend (what the uncached CPU forward does, and what is replayed):

* torchao ``IntxUnpackedToInt8Tensor``: ``F.linear(x, w.dequantize(), b)`` (no activation quantization).
* HQQ ``HQQLinear`` (PYTORCH backend): ``matmul(x, dequantize().t()) (+= bias)``.
* bitsandbytes ``Linear4bit``: ``F.linear(x, dequantize_4bit(...), b)``; its backward is
  ``matmul(grad, W)``: without a bias autograd's own ``linear`` computes exactly that, with one a small
  autograd function replays it.
* bitsandbytes ``Linear8bitLt``: only in training mode (``MatMul8bitFp``: ``CB * SCB / 127``, then
  ``F.linear``). In eval mode it quantizes the activations to int8 (``MatMul8bitLt``), which a dense weight
  cannot reproduce, so evaluation keeps the original path.

The switch is an execution setting (``QRA_BENCH_FAST``, see :mod:`qra_bench.execution`), not part of the
trial recipe.
"""

from __future__ import annotations

import types
from typing import Callable, Optional, cast

import torch
from torch import nn

_ATTR = "_qra_dense_weight"


class _DenseMatmul4bit(torch.autograd.Function):
    """bitsandbytes ``MatMul4Bit`` on a cached dense weight: the same forward and backward ops."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        ctx.save_for_backward(weight)
        ctx.has_bias = bias is not None
        ctx.bias_dtype = None if bias is None else bias.dtype
        return torch.nn.functional.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (weight,) = ctx.saved_tensors
        grad_x = torch.matmul(grad_output, weight.to(grad_output.dtype)) if ctx.needs_input_grad[0] else None
        grad_bias = grad_output.sum(0, dtype=ctx.bias_dtype) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, None, grad_bias


class _DenseMatmul8bitFp(torch.autograd.Function):
    """bitsandbytes ``MatMul8bitFp`` (its CPU training path) on a cached dense weight."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        ctx.save_for_backward(weight)
        ctx.grad_shape = x.shape
        ctx.dtype_x = x.dtype
        ctx.bias_dtype = None if bias is None else bias.dtype
        return torch.nn.functional.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (weight,) = ctx.saved_tensors
        grad_bias = grad_output.sum(0, dtype=ctx.bias_dtype) if ctx.needs_input_grad[2] else None
        if len(grad_output.shape) == 3:
            grad_output = grad_output.reshape(-1, grad_output.shape[-1]).contiguous()
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.matmul(grad_output.to(ctx.dtype_x), weight).view(ctx.grad_shape)
        return grad_x, None, grad_bias


def _torchao_forward(module: nn.Module) -> Optional[Callable]:
    weight = getattr(module, "weight", None)
    if weight is None or not hasattr(weight, "dequantize") or type(weight) in (torch.Tensor, nn.Parameter):
        return None
    if getattr(weight, "activation_quantization", None) is not None:
        return None  # the activations are quantized too: not a plain dense matmul
    with torch.no_grad():
        dense = weight.dequantize()
    setattr(module, _ATTR, dense)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x, getattr(self, _ATTR), self.bias)

    return forward


def _hqq_forward(module: nn.Module) -> Optional[Callable]:
    from hqq.core.quantize import HQQBackend, HQQLinear

    if not isinstance(module, HQQLinear) or HQQLinear.backend != HQQBackend.PYTORCH:
        return None
    with torch.no_grad():
        setattr(module, _ATTR, module.dequantize())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.matmul(x, getattr(self, _ATTR).t())
        if self.bias is not None:
            out += self.bias
        return out

    return forward


def _bnb_forward(module: nn.Module) -> Optional[Callable]:
    import bitsandbytes as bnb

    if isinstance(module, bnb.nn.Linear4bit):
        if module.support_avx512bf16_for_cpu:
            return None  # the bf16 repacked inference kernel: not a dense matmul
        state = cast(bnb.nn.Params4bit, module.weight).quant_state  # nn.Linear declares a plain Parameter
        with torch.no_grad():
            setattr(module, _ATTR, bnb.functional.dequantize_4bit(module.weight.data, state).to(state.dtype))
        original = module.forward

        def forward4(self, x: torch.Tensor) -> torch.Tensor:
            dense = getattr(self, _ATTR)
            if self.compute_dtype is not None and self.compute_dtype != dense.dtype or x.dtype != dense.dtype:
                return original(x)
            bias = self.bias
            if bias is None:  # autograd's own linear: the same forward, and the same mm for the input gradient
                return torch.nn.functional.linear(x, dense)
            return _DenseMatmul4bit.apply(x, dense, bias.to(self.compute_dtype or x.dtype))

        return forward4
    if isinstance(module, bnb.nn.Linear8bitLt):
        if module.state.has_fp16_weights or module.state.threshold > 0:
            return None
        original = module.forward

        def forward8(self, x: torch.Tensor) -> torch.Tensor:
            if not self.training:  # eval: int8 activations (MatMul8bitLt), kept as is
                return original(x)
            dense = getattr(self, _ATTR, None)
            if dense is None or dense.dtype != x.dtype:
                cb = self.state.CB if self.state.CB is not None else self.weight.data
                scb = self.state.SCB if self.state.SCB is not None else self.weight.SCB
                with torch.no_grad():
                    dense = cb.data.to(x.dtype).mul_(scb.unsqueeze(1).mul(1.0 / 127.0))
                setattr(self, _ATTR, dense)
            bias = self.bias
            if bias is None:
                return torch.nn.functional.linear(x, dense)
            if bias.dtype != x.dtype:
                bias.data = bias.data.to(x.dtype)
            return _DenseMatmul8bitFp.apply(x, dense, bias)

        return forward8
    return None


def _forward_for(module: nn.Module, backend: str) -> Optional[Callable]:
    if backend == "torchao":
        return _torchao_forward(module)
    if backend == "hqq":
        return _hqq_forward(module)
    if backend == "bnb":
        return _bnb_forward(module)
    return None


def install_dequant_cache(model: nn.Module, backend: str) -> int:
    """Give every quantized linear of ``model`` (on a CPU) a forward on its once-dequantized weight.

    Returns the number of layers cached (0 on CUDA, or for layers whose computation a dense weight cannot
    reproduce; those keep their own forward).
    """
    from qra_bench.quant.base import block_linear_modules, decoder_blocks

    n = 0
    for block in decoder_blocks(model):
        for _, (_, _, layer) in block_linear_modules(block).items():
            weight = getattr(layer, "weight", None)
            if isinstance(layer, nn.Linear) and type(weight) in (torch.Tensor, nn.Parameter):
                continue  # unquantized (16-bit) block
            device = weight.device if torch.is_tensor(weight) else getattr(layer, "device", "cpu")
            if torch.device(device).type != "cpu":
                continue
            forward = _forward_for(layer, backend)
            if forward is not None:
                layer.forward = types.MethodType(forward, layer)
                n += 1
    return n
