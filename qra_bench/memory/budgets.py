"""Memory budgets: named (``uniform-4bit``, ``fp16-lora``, ``0.5xfp16-lora``) or absolute (``3.5GiB``), in
bytes for a :class:`~qra_bench.memory.MemoryModel`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np

from qra_bench.errors import QRBenchError
from qra_bench.memory.layouts import UNQUANTIZED_BITS
from qra_bench.space import QRConfig

if TYPE_CHECKING:
    from qra_bench.memory.model import MemoryModel

__all__ = ["BUDGET_FORMS", "Budget", "parse_budget"]


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


BUDGET_FORMS = (
    "uniform-<b>bit (e.g. uniform-4bit), fp16-lora, <x>xfp16-lora (e.g. 0.5xfp16-lora), "
    "or a size: 3.5GiB, 800MiB, 2GB, 123456 (bytes)"
)
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
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
