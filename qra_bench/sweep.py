"""Budget what-if sweeps: the best surrogate-predicted configuration at each of many memory budgets.

:func:`run_sweep` searches every budget against the surrogate only (no trial runs), with
:data:`SWEEP_SETTINGS`, a smaller AutoQRA than a single search's default so that 30 budgets take well under a
minute on two cores. Every point says whether its configuration lies inside the table's support.

**Support** (where the surrogate is interpolating, not extrapolating). A configuration is flagged when any
of three checks fails, each calibrated on the table itself so that the thresholds mean the same on any table:

- ``memory``: its bytes (the search's memory model) lie outside the range of the table's configurations'
  bytes under the same model;
- ``distance``: its distance to the nearest table configuration, in atomic edits
  (:meth:`SearchSpace.distance`, one block's bits or rank moved one rung), exceeds the 90th percentile of the
  table configurations' own nearest-neighbour distances (leave-one-out): it is farther from the data than
  nine in ten of the data are from each other;
- ``std``: the surrogate's predictive std exceeds the 90th percentile of its std on the table's own
  configurations (in-sample, full fidelity): the model itself says it knows less there than almost anywhere
  it was trained.

Outputs (:func:`write_sweep`): ``sweep.csv`` and ``sweep.json`` (one row per budget) and ``sweep.png`` (the
predicted quality-memory front with ±1 std bands beside the table's measured points).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd

from qra_bench.errors import InfeasibleBudgetError, QRBenchError
from qra_bench.memory import BUDGET_FORMS, Budget, MemoryModel
from qra_bench.search.autoqra import AutoQRASettings
from qra_bench.search.evolution import EvolutionSettings
from qra_bench.search.surrogate_search import SurrogateProblem, search_budget

__all__ = [
    "SWEEP_SETTINGS",
    "Support",
    "SweepPoint",
    "SweepResult",
    "format_sweep",
    "parse_budgets",
    "run_sweep",
    "sweep_plot",
    "table_support",
    "write_sweep",
]

PathLike = Union[str, os.PathLike]
#: AutoQRA per budget in a sweep: 6 generations of Stage 1 and 10 Stage-2 evaluations (defaults: 12 and 30),
#: about a third of a single search's surrogate calls.
SWEEP_SETTINGS = AutoQRASettings(evolution=EvolutionSettings(generations=6), stage2_evals=10)
SUPPORT_QUANTILE = 90.0  # percentile of the table's own nearest-neighbour distances and stds
MAX_BUDGETS = 1000
_RANGE = re.compile(r"^(?P<lo>[^:]+):(?P<hi>[^:]+):(?P<n>[^:]+)$")
_FP16_FRACTION = re.compile(r"^\s*([0-9.eE+-]+)\s*x\s*fp16(?:-lora)?\s*$", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------------------
# Budgets
# ---------------------------------------------------------------------------------------------------------
def parse_budgets(text: str, memory_model: MemoryModel) -> list[Budget]:
    """``LO:HI:N`` (N budgets evenly spaced from LO to HI, both included) or a comma list of budgets.

    LO and HI are any budgets (``0.3xfp16-lora``, ``uniform-2bit``, ``40MiB``); when both are fractions of
    fp16-lora the points are named as fractions too (``0.5xfp16-lora``), otherwise by their bytes.
    """
    raw = str(text).strip()
    m = _RANGE.match(raw)
    if m is None:
        items = [p.strip() for p in raw.split(",") if p.strip()]
        if not items:
            raise QRBenchError(f"no budgets in {text!r}; give LO:HI:N or a comma list of {BUDGET_FORMS}")
        return [memory_model.budget(p) for p in items]
    lo_text, hi_text, n_text = m.group("lo").strip(), m.group("hi").strip(), m.group("n").strip()
    if not re.fullmatch(r"\d+", n_text) or not 1 <= int(n_text) <= MAX_BUDGETS:
        raise QRBenchError(f"budget range {text!r}: the count {n_text!r} must be an integer in 1..{MAX_BUDGETS}")
    n = int(n_text)
    lo, hi = memory_model.budget(lo_text), memory_model.budget(hi_text)
    if lo.bytes > hi.bytes or (lo.bytes == hi.bytes and n > 1):
        raise QRBenchError(
            f"budget range {text!r}: LO {lo_text!r} ({lo.bytes:,} bytes) must be below HI {hi_text!r} "
            f"({hi.bytes:,} bytes); give LO:HI:N with LO < HI (or N = 1)"
        )
    flo, fhi = _FP16_FRACTION.match(lo_text), _FP16_FRACTION.match(hi_text)
    if flo and fhi:
        # Fractions of the same reference: name and size every point exactly as parse_budget would.
        return [
            memory_model.budget(f"{x:.6g}xfp16-lora") for x in np.linspace(float(flo.group(1)), float(fhi.group(1)), n)
        ]
    return [Budget(name=f"{int(round(b))}", bytes=int(round(b))) for b in np.linspace(lo.bytes, hi.bytes, n)]


# ---------------------------------------------------------------------------------------------------------
# The table's support
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Support:
    """The region a surrogate was trained on (see the module docstring); bytes, atomic edits, target units."""

    n_configs: int
    memory_min: int
    memory_max: int
    distance_threshold: float
    std_threshold: float
    bit_idx: np.ndarray = field(repr=False, compare=False)
    rank_idx: np.ndarray = field(repr=False, compare=False)
    memory: np.ndarray = field(repr=False, compare=False)
    observed: np.ndarray = field(repr=False, compare=False)

    def nearest(self, bit_idx: np.ndarray, rank_idx: np.ndarray) -> int:
        """Atomic edits to the nearest table configuration (the L1 distance of rung indices)."""
        d = np.abs(self.bit_idx - bit_idx[None]).sum(axis=1) + np.abs(self.rank_idx - rank_idx[None]).sum(axis=1)
        return int(d.min()) if len(d) else -1

    def reasons(self, memory: int, distance: int, std: float) -> list[str]:
        """Which support checks a configuration fails (empty: inside the table's support)."""
        out = []
        if self.n_configs == 0:
            return ["no table configurations"]
        if memory < self.memory_min:
            out.append(f"memory {_mib(memory)} < table min {_mib(self.memory_min)}")
        elif memory > self.memory_max:
            out.append(f"memory {_mib(memory)} > table max {_mib(self.memory_max)}")
        if distance > self.distance_threshold:
            out.append(f"{distance} edits from table > p{SUPPORT_QUANTILE:g} {self.distance_threshold:g}")
        # A relative tolerance: an ensemble's std takes few distinct values, and a point at the threshold is in.
        if std > self.std_threshold * (1 + 1e-6) + 1e-12:
            out.append(f"std {std:.4f} > p{SUPPORT_QUANTILE:g} {self.std_threshold:.4f}")
        return out

    def describe(self) -> dict:
        return {
            "n_configs": self.n_configs,
            "memory_min_bytes": self.memory_min,
            "memory_max_bytes": self.memory_max,
            "distance_threshold_edits": self.distance_threshold,
            "std_threshold": self.std_threshold,
            "quantile": SUPPORT_QUANTILE,
            "rule": "flagged when memory is outside the table's range, or the nearest table configuration is "
            "more atomic edits away than the table's own p90 nearest-neighbour distance, or the "
            "surrogate std exceeds its p90 on the table's configurations",
        }


def _mib(n: float) -> str:
    return f"{n / 2**20:.2f} MiB"


def table_support(problem: SurrogateProblem) -> Support:
    """The table's configurations, their bytes and the two calibrated thresholds of :class:`Support`."""
    bi, ri, observed = problem.table_configs()
    m = len(bi)
    if m == 0:
        return Support(0, 0, 0, 0.0, 0.0, bi, ri, np.zeros(0, dtype=np.int64), observed)
    memory = problem.memory_model.total_bytes_batch(bi, ri)
    if m > 1:
        d = np.abs(bi[:, None] - bi[None]).sum(axis=2) + np.abs(ri[:, None] - ri[None]).sum(axis=2)
        np.fill_diagonal(d, np.iinfo(np.int64).max)
        # "higher": a distance the table really has, so the threshold is a whole number of edits.
        dist_thr = float(np.percentile(d.min(axis=1), SUPPORT_QUANTILE, method="higher"))
    else:
        dist_thr = 0.0
    _, std = problem.predict(bi, ri)
    std_thr = float(np.percentile(std, SUPPORT_QUANTILE))
    return Support(m, int(memory.min()), int(memory.max()), dist_thr, std_thr, bi, ri, memory, observed)


# ---------------------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepPoint:
    """The best predicted configuration at one budget (bytes; target units), or ``feasible=False`` when the
    budget is below the smallest configuration of the space. ``source``: ``"search"`` (this budget's own
    search) or ``"budget <name>"`` (a smaller budget's configuration, predicted better)."""

    budget: str
    budget_bytes: int
    feasible: bool
    bits: tuple[int, ...] = ()
    ranks: tuple[int, ...] = ()
    config_hash: str = ""
    avg_bits: float = math.nan
    avg_rank: float = math.nan
    memory_bytes: int = 0
    predicted_mean: float = math.nan
    predicted_std: float = math.nan
    nearest_edits: int = -1
    out_of_support: bool = False
    support_reasons: str = ""
    source: str = ""

    def row(self) -> dict:
        d = asdict(self)
        d["bits"] = " ".join(map(str, self.bits))
        d["ranks"] = " ".join(map(str, self.ranks))
        return d


@dataclass
class SweepResult:
    """Every budget's point, the table's support, and what produced them (wall time in seconds)."""

    points: list[SweepPoint]
    support: Support
    target: str
    method: str
    seed: int
    wall_s: float
    surrogate: str
    table: str
    table_hash: str
    higher_is_better: bool = True


def run_sweep(
    problem: SurrogateProblem,
    budgets: Sequence[Budget],
    method: str = "autoqra",
    seed: int = 0,
    settings: Optional[AutoQRASettings] = None,
    evals: Optional[int] = None,
) -> SweepResult:
    """Search every budget against the surrogate (same method and seed each time); see the module docstring.

    Budgets are searched from the smallest up, and a budget keeps the best configuration found at a smaller
    one when that is predicted better than its own search's (it fits: the smaller budget's bytes are less),
    so the predicted front never falls as the budget grows; ``source`` says where each point came from.
    Points are returned in the order of ``budgets``.
    """
    t0 = time.perf_counter()
    settings = settings or SWEEP_SETTINGS
    support = table_support(problem)
    sign = problem.sign
    points: dict[int, SweepPoint] = {}
    carried = None  # (outcome, budget name) of the best configuration so far, in higher-is-better order
    for i in sorted(range(len(budgets)), key=lambda k: budgets[k].bytes):  # stable: equal budgets keep order
        budget = budgets[i]
        try:
            out = search_budget(problem, budget, method, seed, settings=settings, evals=evals)
        except InfeasibleBudgetError:
            points[i] = SweepPoint(
                budget=budget.name,
                budget_bytes=budget.bytes,
                feasible=False,
                out_of_support=True,
                support_reasons="budget below the smallest configuration",
            )
            continue
        source = "search"
        if carried is not None and sign * carried[0].predicted_mean > sign * out.predicted_mean:
            out, source = carried[0], f"budget {carried[1]}"
        else:
            carried = (out, budget.name)
        cfg = out.config
        bi, ri = problem.space.bit_index(cfg), problem.space.rank_index(cfg)
        nearest = support.nearest(bi, ri)
        reasons = support.reasons(out.memory.total, nearest, out.predicted_std)
        points[i] = SweepPoint(
            budget=budget.name,
            budget_bytes=budget.bytes,
            feasible=problem.memory_model.is_feasible(cfg, budget),
            bits=cfg.bits,
            ranks=cfg.ranks,
            config_hash=cfg.hash,
            avg_bits=cfg.avg_bits,
            avg_rank=cfg.avg_rank,
            memory_bytes=out.memory.total,
            predicted_mean=out.predicted_mean,
            predicted_std=out.predicted_std,
            nearest_edits=nearest,
            out_of_support=bool(reasons),
            support_reasons="; ".join(reasons),
            source=source,
        )
    return SweepResult(
        points=[points[i] for i in range(len(budgets))],
        support=support,
        target=problem.target,
        method=method,
        seed=int(seed),
        wall_s=time.perf_counter() - t0,
        surrogate=str(problem.surrogate_path),
        table=str(problem.table_path),
        table_hash=problem.table_hash,
        higher_is_better=problem.artifact.higher_is_better,
    )


def format_sweep(result: SweepResult) -> str:
    """One line per budget: bytes, the configuration's average bits and rank, mean ± std, the support flag."""
    s = result.support
    head = [
        f"sweep: {len(result.points)} budgets, {result.method} seed {result.seed} against the surrogate only "
        f"(predicted {result.target} at full fidelity, not measured)",
        f"support: {s.n_configs} table configurations, {_mib(s.memory_min)} .. {_mib(s.memory_max)}; "
        f"flag = memory outside that range, > {s.distance_threshold:g} edits from the table, or std > "
        f"{s.std_threshold:.4f} (p{SUPPORT_QUANTILE:g} of the table's own)",
        f"{'budget':<20}{'bytes':>16}{'memory':>16}{'bits':>7}{'rank':>7}  {result.target + ' ± std':<20}support",
    ]
    lines = []
    for p in result.points:
        if not p.feasible:
            lines.append(
                f"{p.budget:<20}{p.budget_bytes:>16,}{'':>16}{'':>7}{'':>7}  {'infeasible':<20}{p.support_reasons}"
            )
            continue
        flag = f"EXTRAPOLATED ({p.support_reasons})" if p.out_of_support else "ok"
        if p.source != "search":
            flag += f"  [configuration of {p.source}]"
        lines.append(
            f"{p.budget:<20}{p.budget_bytes:>16,}{p.memory_bytes:>16,}{p.avg_bits:>7.2f}{p.avg_rank:>7.2f}  "
            f"{f'{p.predicted_mean:.4f} ± {p.predicted_std:.4f}':<20}{flag}"
        )
    return "\n".join(head + lines)


def write_sweep(result: SweepResult, out: PathLike) -> list[Path]:
    """Write ``sweep.csv``, ``sweep.json`` and ``sweep.png`` into ``out``; return their paths."""
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    rows = [p.row() for p in result.points]
    csv_path, json_path, png_path = directory / "sweep.csv", directory / "sweep.json", directory / "sweep.png"
    pd.DataFrame(rows, columns=list(SweepPoint.__dataclass_fields__)).to_csv(csv_path, index=False, float_format="%.9g")
    doc = {
        "target": result.target,
        "method": result.method,
        "seed": result.seed,
        "surrogate": result.surrogate,
        "table": result.table,
        "table_hash": result.table_hash,
        "higher_is_better": result.higher_is_better,
        "support": result.support.describe(),
        "source": "surrogate prediction at full fidelity (no trial was run)",
        "wall_s": result.wall_s,
        "points": [{**asdict(p), "bits": list(p.bits), "ranks": list(p.ranks)} for p in result.points],
    }
    json_path.write_text(json.dumps(_finite(doc), indent=1) + "\n")
    sweep_plot(result, png_path)
    return [csv_path, json_path, png_path]


def _finite(value):
    """NaN becomes null, so the JSON is strict."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def pareto_mask(memory: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Points no other point beats on both axes (less or equal memory and strictly better quality, or equal
    quality and strictly less memory); ``quality`` is higher-is-better."""
    n = len(memory)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        better = (memory <= memory[i]) & (quality >= quality[i]) & ((memory < memory[i]) | (quality > quality[i]))
        keep[i] = not better.any()
    return keep


def sweep_plot(result: SweepResult, path: PathLike) -> Path:
    """Predicted quality vs memory of each budget's configuration, ±1 std band, the front of the sweep, and
    the table's measured configurations (full fidelity, mean over seeds); extrapolated points hollow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sign = 1.0 if result.higher_is_better else -1.0
    pts = [p for p in result.points if p.feasible]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    s = result.support
    seen = np.isfinite(s.observed)
    if seen.any():
        ax.scatter(
            s.memory[seen] / 2**20,
            s.observed[seen],
            s=14,
            c="0.55",
            alpha=0.8,
            label=f"table: measured ({int(seen.sum())} configurations)",
        )
    if pts:
        order = np.argsort([p.memory_bytes for p in pts], kind="stable")
        mem = np.array([pts[i].memory_bytes for i in order], dtype=float) / 2**20
        mean = np.array([pts[i].predicted_mean for i in order])
        std = np.array([pts[i].predicted_std for i in order])
        flagged = np.array([pts[i].out_of_support for i in order])
        ax.fill_between(mem, mean - std, mean + std, color="C0", alpha=0.2, label="surrogate ±1 std")
        front = pareto_mask(mem, sign * mean)
        ax.plot(
            mem[front], mean[front], "-", color="C0", lw=1.5, drawstyle="steps-post", label="predicted front (sweep)"
        )
        ax.scatter(mem[~flagged], mean[~flagged], s=22, c="C0", zorder=3, label="predicted: in table support")
        if flagged.any():
            ax.scatter(
                mem[flagged],
                mean[flagged],
                s=30,
                facecolors="none",
                edgecolors="C3",
                zorder=3,
                label="predicted: extrapolated",
            )
    ax.set_xlabel("memory of the configuration (MiB, budget convention)")
    ax.set_ylabel(f"{result.target} (full fidelity)")
    ax.set_title(f"{result.method} budget sweep: surrogate predictions (no trials) vs table measurements", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
