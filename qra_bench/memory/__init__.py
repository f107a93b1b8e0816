"""Memory of a configuration, in bytes: the only package in qra-bench that knows bytes.

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

The package: :mod:`~qra_bench.memory.layouts` (bytes per backend layout), :mod:`~qra_bench.memory.budgets`
(:class:`Budget`, :func:`parse_budget`), :mod:`~qra_bench.memory.model` (:class:`MemorySettings`,
:class:`MemoryModel`, :class:`MemoryBreakdown`) and :mod:`~qra_bench.memory.report` (the ``qra-bench memory``
text). Every name is importable from ``qra_bench.memory``.
"""

from __future__ import annotations

from qra_bench.memory.budgets import BUDGET_FORMS as BUDGET_FORMS
from qra_bench.memory.budgets import Budget, parse_budget
from qra_bench.memory.layouts import (
    STORAGE_LAYOUTS,
    bnb_layout,
    formula_layout,
    hqq_layout,
    lora_bytes,
    method_formula_bytes,
    supported_bits,
    torchao_layout,
)
from qra_bench.memory.layouts import BNB_CODE_BOOK_BYTES as BNB_CODE_BOOK_BYTES
from qra_bench.memory.layouts import BNB_NESTED_BLOCKSIZE as BNB_NESTED_BLOCKSIZE
from qra_bench.memory.layouts import BNB_NESTED_CODE_BOOK_BYTES as BNB_NESTED_CODE_BOOK_BYTES
from qra_bench.memory.layouts import OPTIMIZER_STATES as OPTIMIZER_STATES
from qra_bench.memory.layouts import TORCHAO_ZERO_POINT_BYTES as TORCHAO_ZERO_POINT_BYTES
from qra_bench.memory.layouts import UNQUANTIZED_BITS as UNQUANTIZED_BITS
from qra_bench.memory.layouts import storage_layout as storage_layout
from qra_bench.memory.model import REPAIR_EPS as REPAIR_EPS
from qra_bench.memory.model import TERMS, MemoryBreakdown, MemoryModel, MemorySettings, activation_bytes
from qra_bench.memory.model import WEIGHTS_AND_ADAPTERS as WEIGHTS_AND_ADAPTERS
from qra_bench.memory.model import human_bytes as human_bytes
from qra_bench.memory.model import solve_seq_len as solve_seq_len
from qra_bench.memory.report import memory_report

__all__ = [
    "STORAGE_LAYOUTS",
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
