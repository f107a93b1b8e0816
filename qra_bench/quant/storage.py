"""Bytes a model really stores: every parameter and buffer, including what quantizers keep elsewhere.

Quantized layers hide part of their storage: torchao tensor subclasses hold inner tensors, HQQ keeps scale
and zero in a ``meta`` dict, bitsandbytes keeps absmax in a ``quant_state``. This walks all of them, counting
each underlying storage once. It is what the memory model is proven against.
"""

from __future__ import annotations

import torch
from torch import nn


def _leaf_tensors(t: torch.Tensor):
    """Plain tensors underneath ``t`` (tensor subclasses flattened recursively)."""
    if hasattr(t, "__tensor_flatten__") and type(t) not in (torch.Tensor, nn.Parameter):
        names, _ = t.__tensor_flatten__()
        for name in names:
            yield from _leaf_tensors(getattr(t, name))
    else:
        yield t


def _side_tensors(module: nn.Module):
    """Tensors a quantized layer keeps outside its parameters and buffers."""
    meta = getattr(module, "meta", None)
    if isinstance(meta, dict):  # HQQ: scale and zero in ``meta``; the bias is a plain tensor attribute
        stack = [meta]
        while stack:
            d = stack.pop()
            for value in d.values():
                if torch.is_tensor(value):
                    yield value
                elif isinstance(value, dict):
                    stack.append(value)
        bias = getattr(module, "bias", None)
        if torch.is_tensor(bias):
            yield bias
    weight = getattr(module, "weight", None)
    state = getattr(weight, "quant_state", None)
    if state is not None:  # bitsandbytes 4-bit. Read the state itself, not as_dict(): that clones the nested
        # code book (counted twice) and turns the double-quantization offset into a Python float (missed).
        for value in (state.absmax, state.code, getattr(state, "offset", None)):
            if torch.is_tensor(value):
                yield value
        state2 = getattr(state, "state2", None)
        if state2 is not None:
            yield state2.absmax
            yield state2.code
    scb = getattr(weight, "SCB", None)
    if torch.is_tensor(scb):  # bitsandbytes int8
        yield scb


def storage_bytes(model: nn.Module, trainable_only: bool = False) -> int:
    """Total bytes of all distinct storages behind ``model``'s parameters, buffers and quantizer state."""
    seen: set[tuple[int, int]] = set()
    total = 0

    def add(t: torch.Tensor) -> None:
        nonlocal total
        for leaf in _leaf_tensors(t):
            if leaf.numel() == 0:
                continue
            key = (leaf.untyped_storage().data_ptr(), leaf.untyped_storage().nbytes())
            if key not in seen:
                seen.add(key)
                total += leaf.untyped_storage().nbytes()

    for p in model.parameters():
        if not trainable_only or p.requires_grad:
            add(p)
    if trainable_only:
        return total
    for b in model.buffers():
        add(b)
    for m in model.modules():
        for t in _side_tensors(m):
            add(t)
    return total
