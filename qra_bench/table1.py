"""The Table-1 analogue: AutoQRA's pick against honest baselines at one budget, from measured rows.

Four rows, each a mean +- standard error over seeds of full-fidelity ok rows, with memory, average bits and
rank and whether it fits the budget:

1. 16-bit LoRA, rank 16 (the unquantized upper bound; usually over the budget);
2. uniform 4-bit, rank 16 (the QLoRA-style baseline);
3. the best uniform configuration that fits the budget: every (bits, rank) pair of the ladders applied to all
   blocks, the one with the best measured mean among those that fit (the baseline a practitioner would pick
   by trying the uniform grid);
4. AutoQRA's pick.

The pick *beats the baselines* only when it is better than the best fitting uniform configuration by more
than two standard errors of the difference. Used by the main job and by the ``table1`` claim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd

from qra_bench.difficulty import HIGHER_IS_BETTER, config_means
from qra_bench.memory import Budget, MemoryModel, human_bytes
from qra_bench.space import QRConfig, SearchSpace

__all__ = ["Table1Row", "baseline_configs", "format_table1", "measure", "pick_beats_uniform", "table1_records"]

#: What the metrics mean per task: (eval_loss unit, accuracy).
METRIC_TEXT = {
    "news": ("held-out news LM loss, nats/token", "greedy next-token accuracy"),
    "cipher": ("held-out enciphered news LM loss, nats/token", "greedy next-token accuracy"),
    "bbc": ("held-out topic cross-entropy, nats/example", "topic accuracy"),
}


@dataclass(frozen=True)
class Table1Row:
    """One row; measured values are NaN where nothing was measured.

    ``value`` / ``se`` are the main metric's mean and standard error over ``n_seeds`` seeds; ``predicted`` /
    ``predicted_std`` the surrogate's prediction (metric units); ``memory_bytes`` under the budget convention.
    """

    label: str
    bits: tuple[int, ...]
    ranks: tuple[int, ...]
    value: float
    se: float
    accuracy: float
    n_seeds: int
    memory_bytes: int
    fits: bool
    source: str
    predicted: float = math.nan
    predicted_std: float = math.nan
    extra: dict = field(default_factory=dict, compare=False)

    @classmethod
    def of(
        cls,
        label: str,
        cfg: QRConfig,
        measured: tuple[float, float, float, int],
        memory_model: MemoryModel,
        budget: Budget,
        source: str,
        predicted: float = math.nan,
        predicted_std: float = math.nan,
    ) -> "Table1Row":
        """The row of ``cfg``: ``measured`` is :func:`measure`'s ``(mean, se, accuracy, seeds)``; memory (bytes) and
        whether it fits ``budget`` come from ``memory_model``."""
        value, se, acc, n = measured
        return cls(
            label=label,
            bits=tuple(cfg.bits),
            ranks=tuple(cfg.ranks),
            value=value,
            se=se,
            accuracy=acc,
            n_seeds=n,
            memory_bytes=int(memory_model.total_bytes(cfg)),
            fits=bool(memory_model.is_feasible(cfg, budget)),
            source=source,
            predicted=predicted,
            predicted_std=predicted_std,
        )

    @property
    def config(self) -> QRConfig:
        return QRConfig(self.bits, self.ranks)

    @property
    def avg_bits(self) -> float:
        return self.config.avg_bits

    @property
    def avg_rank(self) -> float:
        return self.config.avg_rank


def measure(
    frame: pd.DataFrame, config_hash: str, metric: str, noise: float = math.nan
) -> tuple[float, float, float, int]:
    """``(mean, se, accuracy, seeds)`` of a configuration's full-fidelity ok rows (NaN, NaN, NaN, 0 if none).

    With one seed the standard error is ``noise`` (the pooled seed noise), the best estimate there is.
    """
    frac = frame["fidelity_frac"].astype(float)
    rows = frame[(frame["config_hash"] == config_hash) & np.isclose(frac, 1.0) & frame[metric].notna()]
    if rows.empty:
        return math.nan, math.nan, math.nan, 0
    values = rows[metric].astype(float)
    n = int(rows["seed"].nunique())
    se = float(values.std(ddof=1) / math.sqrt(n)) if n >= 2 else noise
    return float(values.mean()), se, float(rows["accuracy"].astype(float).mean()), n


def baseline_configs(
    space: SearchSpace, frame: pd.DataFrame, metric: str, budget_bytes: int
) -> list[tuple[str, QRConfig]]:
    """``(label, configuration)`` of the three baselines that are on ``space``'s ladders; the best fitting
    uniform one is chosen by measured mean over every uniform pair in ``frame`` that fits ``budget_bytes``."""
    top_rank = max(space.ranks)
    out: list[tuple[str, QRConfig]] = []
    if 16 in space.bits:
        out.append((f"16-bit LoRA, rank {top_rank}", space.uniform(16, top_rank)))
    if 4 in space.bits:
        out.append((f"uniform 4-bit, rank {top_rank} (QLoRA-style)", space.uniform(4, top_rank)))
    means = config_means(frame, metric)
    on_ladder = (
        means[
            [
                set(b) <= set(space.bits) and set(r) <= set(space.ranks) and len(b) == space.n_blocks
                for b, r in zip(means["bits"], means["ranks"])
            ]
        ]
        if len(means)
        else means
    )
    fit = on_ladder[on_ladder["uniform"] & (on_ladder["memory"] <= budget_bytes)] if len(on_ladder) else on_ladder
    if len(fit):
        higher = metric in HIGHER_IS_BETTER
        best = fit.sort_values(["mean", "config_hash"], ascending=[not higher, True], kind="stable").iloc[0]
        cfg = space.uniform(int(best["bits"][0]), int(best["ranks"][0]))
        out.append((f"best fitting uniform: {cfg.bits[0]}-bit, rank {cfg.ranks[0]}", cfg))
    return out


def pick_beats_uniform(pick: Table1Row, uniform: Optional[Table1Row], higher: bool) -> tuple[bool, str]:
    """Whether the pick beats the best fitting uniform row by more than 2 standard errors, and why."""
    if uniform is None or not math.isfinite(uniform.value):
        return False, "no measured uniform configuration fits the budget"
    if not math.isfinite(pick.value):
        return False, "the pick is not measured"
    diff = (pick.value - uniform.value) if higher else (uniform.value - pick.value)
    se = math.hypot(pick.se if math.isfinite(pick.se) else 0.0, uniform.se if math.isfinite(uniform.se) else 0.0)
    beats = se > 0 and diff > 2 * se
    return beats, (
        f"pick {'better' if diff > 0 else 'not better'} than {uniform.label} by {diff:+.4f} "
        f"(2 SE = {2 * se:.4f}, {pick.n_seeds} and {uniform.n_seeds} seeds)"
    )


def _fmt(x: float, digits: int = 4) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def format_table1(
    rows: list[Table1Row], metric: str, budget_name: str, budget_bytes: int, title: str, task: str
) -> str:
    """The Table-1 analogue as fixed-width text (also valid inside a Markdown code block)."""
    loss, accuracy = METRIC_TEXT.get(task, ("held-out task loss, nats", "task accuracy"))
    better = "higher" if metric in HIGHER_IS_BETTER else "lower"
    head = (
        f"{'':<36}{metric + ' ± SE':>18}{'seeds':>6}{'predicted':>11}{'accuracy':>10}{'avg bits':>9}"
        f"{'avg rank':>9}{'memory':>12}{'fits':>6}  source"
    )
    lines = [
        title,
        f"budget {budget_name} = {budget_bytes:,} bytes ({human_bytes(budget_bytes)}); {metric}: "
        f"{loss if metric == 'eval_loss' else accuracy}, {better} is better; accuracy: {accuracy}",
        head,
        "-" * len(head),
    ]
    for r in rows:
        value = f"{_fmt(r.value)} ± {_fmt(r.se)}"
        lines.append(
            f"{r.label:<36}{value:>18}{r.n_seeds:>6}{_fmt(r.predicted):>11}{_fmt(r.accuracy):>10}"
            f"{r.avg_bits:>9.2f}{r.avg_rank:>9.2f}{human_bytes(r.memory_bytes):>12}"
            f"{'yes' if r.fits else 'NO':>6}  {r.source}"
        )
    return "\n".join(lines)


def table1_records(rows: list[Table1Row]) -> list[dict]:
    """The rows as JSON-ready dicts (NaN as None)."""

    def num(x: float) -> Optional[float]:
        return float(x) if x is not None and math.isfinite(x) else None

    return [
        {
            "label": r.label,
            "bits": list(r.bits),
            "ranks": list(r.ranks),
            "value": num(r.value),
            "se": num(r.se),
            "accuracy": num(r.accuracy),
            "n_seeds": r.n_seeds,
            "predicted": num(r.predicted),
            "predicted_std": num(r.predicted_std),
            "memory_bytes": r.memory_bytes,
            "avg_bits": r.avg_bits,
            "avg_rank": r.avg_rank,
            "fits": r.fits,
            "source": r.source,
        }
        for r in rows
    ]
