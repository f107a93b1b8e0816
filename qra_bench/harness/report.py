"""Benchmark reports: anytime curves, the leaderboard with paired Wilcoxon tests, Markdown, plots, files.

Everything here is a function of the runs and the spec (no clock, no randomness), so the same runs give
byte-identical files; :func:`write_outputs` writes them all under one folder.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from qra_bench.errors import QRBenchError
from qra_bench.harness.benchmark import METRICS, Benchmark
from qra_bench.harness.spec import BenchSpec, Evaluation, RunRecord

__all__ = [
    "curves_by_cost",
    "curves_by_evals",
    "evaluations_frame",
    "leaderboard",
    "leaderboard_markdown",
    "write_outputs",
]


# ---------------------------------------------------------------------------------------------------------
# Analysis: curves and leaderboard
# ---------------------------------------------------------------------------------------------------------
def _metric(spec: BenchSpec) -> str:
    """The spec's metric (:func:`~qra_bench.harness.runner.run_benchmark` fills in the task's main metric)."""
    if spec.metric is None:
        raise QRBenchError("the spec names no metric; give one, or run it with run_benchmark, which fills it in")
    return spec.metric


def _in_metric_units(quality: np.ndarray | float, metric: str) -> np.ndarray | float:
    """Quality back in the metric's units (eval_loss is told negated)."""
    return quality if METRICS[metric] else -np.asarray(quality)


def _mean_se(values: np.ndarray) -> tuple[float, float, int]:
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return math.nan, math.nan, 0
    se = float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan
    return float(np.mean(v)), se, len(v)


def evaluations_frame(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """Every told answer of every run, one row each (the columns of :class:`Evaluation`)."""
    cols = [f.name for f in Evaluation.__dataclass_fields__.values()]
    return pd.DataFrame([asdict(e) for r in runs for e in r.evaluations], columns=cols)


def curves_by_cost(runs: Sequence[RunRecord], spec: BenchSpec, n_points: int = 101) -> pd.DataFrame:
    """Mean and standard error over seeds of best-so-far (metric units) at ``n_points`` simulated times from 0
    to ``max_cost_s`` (or the longest run's clock). A run counts at time t once it has a finished answer."""
    metric = _metric(spec)
    horizon = spec.max_cost_s if math.isfinite(spec.max_cost_s) else max((r.clock_s for r in runs), default=0.0)
    grid = np.linspace(0.0, horizon, n_points)
    rows = []
    for (budget, name), group in _groups(runs):
        per_run = []
        for r in group:
            clocks = np.asarray([e.clock_s for e in r.evaluations])
            bests = np.asarray([e.best_so_far for e in r.evaluations])
            idx = np.searchsorted(clocks, grid, side="right") - 1
            per_run.append(np.where(idx >= 0, bests[np.maximum(idx, 0)] if len(bests) else np.nan, np.nan))
        values = np.asarray(_in_metric_units(np.asarray(per_run, dtype=float), metric))
        for j, t in enumerate(grid):
            mean, se, n = _mean_se(values[:, j])
            rows.append(
                {"budget": budget, "optimizer": name, "cost_s": float(t), "mean_best": mean, "se_best": se, "n_runs": n}
            )
    return pd.DataFrame(rows, columns=["budget", "optimizer", "cost_s", "mean_best", "se_best", "n_runs"])


def curves_by_evals(runs: Sequence[RunRecord], spec: BenchSpec) -> pd.DataFrame:
    """Mean and standard error over seeds of best-so-far (metric units) after k answers; a run counts at k
    only if it reached k answers (runs stopped earlier by the clock drop out)."""
    metric = _metric(spec)
    rows = []
    for (budget, name), group in _groups(runs):
        longest = max((len(r.evaluations) for r in group), default=0)
        for k in range(1, longest + 1):
            vals = np.asarray([r.evaluations[k - 1].best_so_far for r in group if len(r.evaluations) >= k], float)
            mean, se, n = _mean_se(np.asarray(_in_metric_units(vals, metric)))
            rows.append(
                {"budget": budget, "optimizer": name, "evals": k, "mean_best": mean, "se_best": se, "n_runs": n}
            )
    return pd.DataFrame(rows, columns=["budget", "optimizer", "evals", "mean_best", "se_best", "n_runs"])


def _groups(runs: Sequence[RunRecord]) -> Iterable[tuple[tuple[str, str], list[RunRecord]]]:
    """Runs grouped by (budget, optimizer), in order of first appearance."""
    order: dict[tuple[str, str], list[RunRecord]] = {}
    for r in runs:
        order.setdefault((r.budget, r.optimizer), []).append(r)
    return order.items()


def _wilcoxon_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired Wilcoxon signed-rank p-value over seeds; 1 when every pair is equal, NaN when fewer
    than two complete pairs."""
    from scipy.stats import wilcoxon

    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if len(a) < 2:
        return math.nan
    if np.all(a == b):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small-sample and tie warnings: the p-value is reported as it is
        return float(wilcoxon(a, b, zero_method="wilcox", alternative="two-sided").pvalue)


def leaderboard(runs: Sequence[RunRecord], spec: BenchSpec) -> pd.DataFrame:
    """Per budget and optimizer: mean and standard error over seeds of the final best (metric units), rank
    (1 = best mean, ties share the better rank), and the paired Wilcoxon signed-rank p-value against the
    best-ranked optimizer of that budget over the seeds both ran (empty for the best itself)."""
    metric = _metric(spec)
    higher = METRICS[metric]
    rows = []
    for budget in dict.fromkeys(r.budget for r in runs):
        finals: dict[str, dict[int, float]] = {}
        stats: dict[str, dict[str, float]] = {}
        for r in runs:
            if r.budget == budget:
                finals.setdefault(r.optimizer, {})[r.seed] = float(_in_metric_units(r.final_best, metric))
        for (b, name), group in _groups(runs):
            if b == budget:
                stats[name] = {
                    "mean_evals": float(np.mean([len(r.evaluations) for r in group])),
                    "mean_cost_s": float(np.mean([r.clock_s for r in group])),
                }
        means = {n: _mean_se(np.asarray(list(v.values())))[0] for n, v in finals.items()}
        key = {n: (-m if higher else m) if math.isfinite(m) else math.inf for n, m in means.items()}
        ordered = sorted(finals, key=lambda n: (key[n], n))
        best = ordered[0]
        for name in ordered:
            mean, se, n = _mean_se(np.asarray(list(finals[name].values())))
            seeds = sorted(set(finals[name]) & set(finals[best]))
            p = (
                math.nan
                if name == best
                else _wilcoxon_p(
                    np.asarray([finals[name][s] for s in seeds]), np.asarray([finals[best][s] for s in seeds])
                )
            )
            rank = 1 + sum(1 for other in ordered if key[other] < key[name])
            rows.append(
                {
                    "budget": budget,
                    "optimizer": name,
                    "rank": rank,
                    f"mean_best_{metric}": mean,
                    f"se_best_{metric}": se,
                    "n_seeds": n,
                    "p_wilcoxon_vs_best": p,
                    "best": best,
                    **stats[name],
                }
            )
    cols = [
        "budget",
        "optimizer",
        "rank",
        f"mean_best_{metric}",
        f"se_best_{metric}",
        "n_seeds",
        "p_wilcoxon_vs_best",
        "best",
        "mean_evals",
        "mean_cost_s",
    ]
    return pd.DataFrame(rows, columns=cols)


def leaderboard_markdown(board: pd.DataFrame, spec: BenchSpec, backend_label: str, name: Optional[str] = None) -> str:
    """The leaderboard as Markdown tables, one per budget, saying which backend answered."""
    m = _metric(spec)
    lines = [
        f"# Leaderboard: {name or spec.benchmark}, backend {backend_label}",
        "",
        f"Final best {m} ({'higher' if METRICS[m] else 'lower'} is better), mean ± standard error over "
        f"{len(spec.seeds)} seeds; max cost {_fmt_seconds(spec.max_cost_s)} simulated"
        + (f", max {spec.max_evals} evaluations" if spec.max_evals else "")
        + "; p: paired Wilcoxon "
        "signed-rank test against the best optimizer over seeds.",
        "",
    ]
    for budget, group in board.groupby("budget", sort=False):
        lines += [
            f"## Budget {budget}",
            "",
            f"| rank | optimizer | best {m} | p vs best | evals | cost |",
            "|---:|---|---|---:|---:|---:|",
        ]
        for row in group.itertuples(index=False):
            mean, se = getattr(row, f"mean_best_{m}"), getattr(row, f"se_best_{m}")
            p = "" if not math.isfinite(row.p_wilcoxon_vs_best) else f"{row.p_wilcoxon_vs_best:.3g}"
            se_text = f" ± {se:.4f}" if math.isfinite(se) else ""
            lines.append(
                f"| {row.rank} | {row.optimizer} | {mean:.4f}{se_text} | {p} | {row.mean_evals:.1f} | "
                f"{_fmt_seconds(row.mean_cost_s)} |"
            )
        lines.append("")
    return "\n".join(lines)


def _fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "unlimited"
    return f"{s / 3600:.2f} h" if s >= 3600 else f"{s:.0f} s"


# ---------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z.+-]+", "_", text)


def _plot(frame: pd.DataFrame, x: str, xlabel: str, title: str, ylabel: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for name, group in frame.groupby("optimizer", sort=False):
        g = group[group["n_runs"] > 0]
        xs, mean, se = g[x].to_numpy(float), g["mean_best"].to_numpy(float), np.nan_to_num(g["se_best"].to_numpy(float))
        (line,) = ax.plot(
            xs / 3600 if x == "cost_s" else xs,
            mean,
            label=name,
            lw=1.6,
            drawstyle="steps-post" if x == "cost_s" else "default",
        )
        ax.fill_between(
            xs / 3600 if x == "cost_s" else xs,
            mean - se,
            mean + se,
            color=line.get_color(),
            alpha=0.18,
            step="post" if x == "cost_s" else None,
            lw=0,
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def write_outputs(
    spec: BenchSpec,
    runs: Sequence[RunRecord],
    board: pd.DataFrame,
    benches: Mapping[str, Benchmark],
    out: Path,
    plots: bool = True,
) -> list[Path]:
    """Write the CSVs, the leaderboard, ``bench.json`` and (``plots``) the PNGs; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []

    def csv(frame: pd.DataFrame, name: str) -> None:
        path = out / name
        frame.to_csv(path, index=False, float_format="%.10g")
        files.append(path)

    cost, evals = curves_by_cost(runs, spec), curves_by_evals(runs, spec)
    csv(evaluations_frame(runs), "evaluations.csv")
    csv(cost, "curves_cost.csv")
    csv(evals, "curves_evals.csv")
    csv(
        pd.DataFrame(
            [
                {
                    "optimizer": r.optimizer,
                    "budget": r.budget,
                    "seed": r.seed,
                    "n_evals": len(r.evaluations),
                    "final_best": r.final_best,
                    "clock_s": r.clock_s,
                    "stopped_by": r.stopped_by,
                    "optimizer_wall_s": round(r.optimizer_wall_s, 3),
                }
                for r in runs
            ]
        ),
        "runs.csv",
    )
    csv(board, "leaderboard.csv")
    # The backend(s) that really answered (table+live mixes two), for every table and figure.
    answered = sorted({e.backend for r in runs for e in r.evaluations})
    label = spec.backend + (f" (answers from {', '.join(answered)})" if spec.backend == "table+live" else "")
    any_bench = next(iter(benches.values()))
    md = out / "leaderboard.md"
    md.write_text(leaderboard_markdown(board, spec, label, any_bench.name) + "\n")
    files.append(md)
    info = {
        "spec": {
            **asdict(spec),
            "max_cost_s": spec.max_cost_s if math.isfinite(spec.max_cost_s) else None,
            "optimizer_kwargs": {k: dict(v) for k, v in spec.optimizer_kwargs.items()},
        },
        "benchmark": {
            "name": any_bench.name,
            "table": str(any_bench.table_path),
            "table_content_hash": any_bench.content_hash,
            "model": any_bench.model_name,
            "task": any_bench.task_name,
            "space": {
                "n_blocks": any_bench.space.n_blocks,
                "bits": list(any_bench.space.bits),
                "ranks": list(any_bench.space.ranks),
            },
            "memory_settings": asdict(any_bench.memory_model.settings),
            "cost_model": asdict(any_bench.cost_model),
            "surrogates": {
                m: {
                    "kind": a.manifest["model"]["kind"],
                    "table_content_hash": a.table_hash,
                    "model_sha256": a.manifest.get("model_file", {}).get("sha256"),
                }
                for m, a in any_bench.surrogates.items()
            },
        },
        "budgets": {name: b.budget.bytes for name, b in benches.items()},
        "backends_answered": answered,
    }
    path = out / "bench.json"
    path.write_text(json.dumps(info, indent=1, default=str) + "\n")
    files.append(path)
    if plots:
        metric = _metric(spec)
        unit = f"best {metric} so far ({'higher' if METRICS[metric] else 'lower'} is better)"
        for budget in spec.budgets:
            title = (
                f"{any_bench.name}, budget {budget}, backend {label}\n"
                f"mean ± standard error over {len(spec.seeds)} seeds"
            )
            for frame, x, xlabel, stem in (
                (cost, "cost_s", "simulated cost (hours)", "anytime_cost"),
                (evals, "evals", "evaluations", "anytime_evals"),
            ):
                p = out / f"{stem}_{_slug(budget)}.png"
                _plot(frame[frame["budget"] == budget], x, xlabel, title, unit, p)
                files.append(p)
    return files
