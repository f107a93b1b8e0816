"""Shared outcome types and formatting of the claims: verdict exceptions, Markdown tables, plots, JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

VERDICTS = ("supported", "not supported", "not testable yet")


class NotTestable(Exception):
    """A claim the data cannot decide yet; ``body`` keeps what was computed before the gap showed."""

    def __init__(self, reason: str, body: Optional[list[str]] = None, numbers: Optional[dict] = None) -> None:
        super().__init__(reason)
        self.reason, self.body, self.numbers = reason, body or [], numbers or {}


@dataclass
class Claim:
    """One claim's outcome: the verdict line, the Markdown body, the numbers (JSON) and the plot written."""

    name: str
    verdict: str
    body: list[str]
    numbers: dict = field(default_factory=dict)
    plot: Optional[str] = None


def f(x: Any, digits: int = 4) -> str:
    """``x`` with ``digits`` decimals, or a dash for None and non-finite values."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.{digits}f}"


def pm(mean: float, std: float, n: int, digits: int = 4) -> str:
    """``mean ± std (n=seeds)``; ``(predicted)`` when no seed was measured."""
    if not math.isfinite(mean):
        return "—"
    s = f"{mean:.{digits}f}"
    if n >= 2 and math.isfinite(std):
        s += f" ± {std:.{digits}f}"
    return s + (f" (n={n})" if n > 0 else " (predicted)")


def mib(b: Optional[float]) -> str:
    """Bytes as MiB with two decimals."""
    return "—" if b is None or not math.isfinite(b) else f"{b / 2**20:.2f} MiB"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table as lines."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def seed_text(seeds: list[int]) -> str:
    """Seeds listed, or ``first..last (count)`` when there are more than ten."""
    if not seeds:
        return "none"
    return ", ".join(map(str, seeds)) if len(seeds) <= 10 else f"{seeds[0]}..{seeds[-1]} ({len(seeds)})"


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    return plt


def save(fig, out: Path, name: str) -> str:
    """Write ``fig`` to ``out/claim_<name>.png`` and close it; return the file name."""
    path = out / f"claim_{name}.png"
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    pyplot().close(fig)
    return path.name


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and non-finite floats as None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
