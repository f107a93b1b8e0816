"""The benchmark runner: optimizers x seeds x budgets on one benchmark, against a simulated clock.

Each run (optimizer, budget, seed) builds the optimizer with that seed, then repeats ask -> objective -> tell
until the simulated clock (the sum of the answers' costs, seconds) would pass ``max_cost_s`` or ``max_evals``
answers were told. An answer that would end after ``max_cost_s`` is not told and does not count: the run
stopped before it finished. The objective's trial seed is the run's seed (on the surrogate backend it changes
nothing; on the table backend a seed the table lacks is averaged over the seeds it has).

Backends: ``surrogate`` (the default) answers any configuration. ``table`` answers only configurations in
the table, so it runs only *pool-based* optimizers: objects with a ``set_pool(configs)`` method, which the
runner calls with :meth:`Benchmark.pool` before the first ask (``pool-random`` is one); any other optimizer
is refused before anything runs. ``table+live`` runs a real trial for every configuration the table lacks.

Outputs under ``out`` (see :func:`write_outputs`): ``evaluations.csv`` (every told answer), ``curves_cost.csv``
and ``curves_evals.csv`` (mean and standard error of best-so-far over seeds), ``runs.csv``, ``leaderboard.csv``
and ``leaderboard.md``, ``bench.json`` and the PNG plots. Everything but ``runs.csv``' optimizer wall times and
``bench.json``'s timing is a function of the spec: the same spec gives byte-identical files.
"""

from __future__ import annotations

import dataclasses

import importlib
import importlib.util
import json
import math
import re
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from qra_bench.harness.benchmark import BENCHMARK_BACKENDS, METRICS, Benchmark, PathLike
from qra_bench.defaults import DEFAULT_TASK
from qra_bench.errors import QRBenchError
from qra_bench.search import make_optimizer
from qra_bench.space import QRConfig

__all__ = [
    "DEFAULT_OPTIMIZERS",
    "BenchReport",
    "BenchSpec",
    "Evaluation",
    "RunRecord",
    "load_plugin",
    "parse_duration",
    "run_benchmark",
]

DEFAULT_OPTIMIZERS: tuple[str, ...] = ("autoqra", "random", "smac", "evolution", "optuna-tpe")
_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``"2h"``, ``"90m"``, ``"45s"``, ``"7200"`` (seconds), ``"inf"`` -> seconds."""
    raw = str(text).strip().lower()
    if raw in ("inf", "none", "unlimited"):
        return math.inf
    m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)", raw)
    if not m or m.group(2) not in _DURATION_UNITS or float(m.group(1)) <= 0:
        raise QRBenchError(
            f"cannot parse duration {text!r}; give a positive number with s, m, h or d (e.g. 2h, 90m, 7200) or inf"
        )
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


_PLUGINS: dict[str, Any] = {}


def load_plugin(spec: str) -> Any:
    """Import a module by dotted name or a ``.py`` file by path (once per process), so that the optimizers it
    registers become available to the runner."""
    key = str(Path(spec).resolve()) if spec.endswith(".py") else spec
    if key in _PLUGINS:
        return _PLUGINS[key]
    if spec.endswith(".py"):
        path = Path(spec)
        if not path.is_file():
            raise QRBenchError(f"plugin file {spec!r} does not exist")
        name = f"qra_bench_plugin_{re.sub(r'[^0-9a-zA-Z_]', '_', path.stem)}_{len(_PLUGINS)}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(spec)
        except ModuleNotFoundError as exc:
            raise QRBenchError(f"cannot import plugin module {spec!r}: {exc}") from None
    _PLUGINS[key] = module
    return module


# ---------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchSpec:
    """What to run.

    Parameters
    ----------
    benchmark
        A shipped table's name or a table directory (see :meth:`Benchmark.load`).
    backend
        ``surrogate`` (default), ``table`` (pool-based optimizers only), ``table+live`` or ``live``.
    optimizers, seeds, budgets
        Registered optimizer names, optimizer (and trial) seeds, budget strings.
    max_cost_s
        Simulated seconds per run (``math.inf``: none; then ``max_evals`` must be set).
    max_evals
        Told answers per run (None: no limit).
    fidelity
        Fraction of the full run every answer is at.
    metric, surrogate
        Passed to :meth:`Benchmark.load`.
    optimizer_kwargs
        Per optimizer name, extra keyword arguments of its constructor.
    """

    benchmark: str = f"tiny-{DEFAULT_TASK}"
    backend: str = "surrogate"
    optimizers: tuple[str, ...] = DEFAULT_OPTIMIZERS
    seeds: tuple[int, ...] = tuple(range(10))
    budgets: tuple[str, ...] = ("uniform-4bit",)
    max_cost_s: float = 7200.0
    max_evals: Optional[int] = None
    fidelity: float = 1.0
    metric: Optional[str] = None  # None: the table task's main metric (eval_loss for news)
    surrogate: str = "xgb"
    optimizer_kwargs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def check(self) -> None:
        if self.backend not in BENCHMARK_BACKENDS:
            raise QRBenchError(f"unknown backend {self.backend!r}; allowed: {', '.join(BENCHMARK_BACKENDS)}")
        for what, values in (("optimizers", self.optimizers), ("seeds", self.seeds), ("budgets", self.budgets)):
            if not values:
                raise QRBenchError(f"give at least one of {what}")
            if len(set(values)) != len(values):
                raise QRBenchError(f"{what} {list(values)} has repeats")
        if not self.max_cost_s > 0:
            raise QRBenchError(f"max cost must be positive seconds, got {self.max_cost_s}")
        if self.max_evals is not None and self.max_evals < 1:
            raise QRBenchError(f"max evals must be >= 1, got {self.max_evals}")
        if math.isinf(self.max_cost_s) and self.max_evals is None:
            raise QRBenchError("give a finite max cost or max evals; a run needs an end")


@dataclass(frozen=True)
class Evaluation:
    """One told answer of a run. ``clock_s`` is the simulated time when it finished (seconds);
    ``best_so_far`` the run's best quality up to and including it (NaN while all answers failed)."""

    optimizer: str
    budget: str
    seed: int
    eval: int
    clock_s: float
    cost_s: float
    quality: float
    best_so_far: float
    accuracy: float
    eval_loss: float
    memory_bytes: int
    backend: str
    config_hash: str
    bits: str
    ranks: str


@dataclass(frozen=True)
class RunRecord:
    """One (optimizer, budget, seed) run: its answers, final best quality, why it stopped, and the optimizer's
    own wall time (seconds of ask/tell, not simulated)."""

    optimizer: str
    budget: str
    seed: int
    evaluations: tuple[Evaluation, ...]
    final_best: float
    clock_s: float
    stopped_by: str
    optimizer_wall_s: float


@dataclass
class BenchReport:
    """What :func:`run_benchmark` returns: the spec, every run, the leaderboard and the files written."""

    spec: BenchSpec
    runs: list[RunRecord]
    leaderboard: pd.DataFrame
    files: list[Path]
    benchmarks: dict[str, Benchmark]


# ---------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------
def _is_pool_based(opt: Any) -> bool:
    return callable(getattr(opt, "set_pool", None))


def _build(name: str, bench: Benchmark, seed: int, spec: BenchSpec) -> Any:
    kw = dict(spec.optimizer_kwargs.get(name, {}))
    if bench.priors is not None:
        kw.setdefault("priors", bench.priors)
    return make_optimizer(name, bench.space, bench.memory_model, bench.budget, seed, **kw)


def run_one(name: str, bench: Benchmark, seed: int, spec: BenchSpec) -> RunRecord:
    """One run of optimizer ``name`` with ``seed`` on ``bench`` (its budget) until the clock or evals run out."""
    opt = _build(name, bench, seed, spec)
    if _is_pool_based(opt):
        opt.set_pool(bench.pool(spec.fidelity))
    evals: list[Evaluation] = []
    clock, best, wall = 0.0, math.nan, 0.0
    stopped_by = "max_evals"
    while spec.max_evals is None or len(evals) < spec.max_evals:
        t0 = time.perf_counter()
        cfg: QRConfig = opt.ask()
        wall += time.perf_counter() - t0
        result = bench.objective(cfg, spec.fidelity, seed)
        if not math.isfinite(result.cost_s) and math.isfinite(spec.max_cost_s):
            raise QRBenchError(
                f"benchmark {bench.name!r} has no timing for this answer (no time_total_s in its "
                "table); run with max cost inf and max evals N"
            )
        if clock + result.cost_s > spec.max_cost_s:
            stopped_by = "max_cost"
            break
        clock += result.cost_s
        quality = result.quality
        t0 = time.perf_counter()
        opt.tell(cfg, quality)  # the quality only: an optimizer never learns which backend answered
        wall += time.perf_counter() - t0
        if math.isfinite(quality) and not quality <= best:  # `not <=` also replaces the initial NaN
            best = quality
        evals.append(
            Evaluation(
                optimizer=name,
                budget=bench.budget.name,
                seed=seed,
                eval=len(evals) + 1,
                clock_s=clock,
                cost_s=result.cost_s,
                quality=quality,
                best_so_far=best,
                accuracy=result.accuracy,
                eval_loss=result.eval_loss,
                memory_bytes=result.memory_bytes,
                backend=result.backend,
                config_hash=cfg.hash,
                bits=",".join(map(str, cfg.bits)),
                ranks=",".join(map(str, cfg.ranks)),
            )
        )
    return RunRecord(
        optimizer=name,
        budget=bench.budget.name,
        seed=seed,
        evaluations=tuple(evals),
        final_best=best,
        clock_s=clock,
        stopped_by=stopped_by,
        optimizer_wall_s=wall,
    )


def run_benchmark(
    spec: BenchSpec,
    out: Optional[PathLike] = None,
    *,
    plots: bool = True,
    progress: Optional[Callable[[str], None]] = None,
) -> BenchReport:
    """Run every (budget, optimizer, seed) of ``spec``; write the outputs under ``out`` when given.

    Every optimizer name and budget is checked (and, on the table backend, every optimizer is checked to be
    pool-based) before the first run, so a typo fails in a second, not after an hour.
    """
    from qra_bench.harness import outside_optimizers  # noqa: F401  (registers optuna-tpe, smac, pool-random)
    from qra_bench.search import available_optimizers

    spec.check()
    known = set(available_optimizers())
    unknown = [n for n in spec.optimizers if n not in known]
    if unknown:
        raise QRBenchError(
            f"unknown optimizer(s) {', '.join(map(repr, unknown))}; available: {', '.join(sorted(known))}"
        )
    base = Benchmark.load(spec.benchmark, spec.backend, spec.budgets[0], metric=spec.metric, surrogate=spec.surrogate)
    spec = dataclasses.replace(spec, metric=base.metric)  # None -> the task's main metric
    benches = {b: base.with_budget(b) for b in spec.budgets}
    if spec.backend == "table":
        not_pool = [n for n in spec.optimizers if not _is_pool_based(_build(n, base, spec.seeds[0], spec))]
        if not_pool:
            raise QRBenchError(
                f"backend 'table' answers only configurations in the table, so it runs pool-based optimizers (with "
                f"set_pool, e.g. pool-random); {', '.join(not_pool)} propose anywhere in the space: use --backend "
                "surrogate (default) or table+live"
            )
    runs: list[RunRecord] = []
    for budget, bench in benches.items():
        for name in spec.optimizers:
            for seed in spec.seeds:
                if progress:
                    progress(f"{budget} {name} seed {seed}")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # ConfigSpace's, from inside SMAC3
                    runs.append(run_one(name, bench, seed, spec))
    board = leaderboard(runs, spec)
    files = write_outputs(spec, runs, board, benches, Path(out), plots=plots) if out is not None else []
    return BenchReport(spec=spec, runs=runs, leaderboard=board, files=files, benchmarks=benches)


# ---------------------------------------------------------------------------------------------------------
# Analysis: curves and leaderboard
# ---------------------------------------------------------------------------------------------------------
def _in_metric_units(quality: np.ndarray | float, metric: str):
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
        values = _in_metric_units(np.asarray(per_run, dtype=float), spec.metric)
        for j, t in enumerate(grid):
            mean, se, n = _mean_se(values[:, j])
            rows.append(
                {"budget": budget, "optimizer": name, "cost_s": float(t), "mean_best": mean, "se_best": se, "n_runs": n}
            )
    return pd.DataFrame(rows, columns=["budget", "optimizer", "cost_s", "mean_best", "se_best", "n_runs"])


def curves_by_evals(runs: Sequence[RunRecord], spec: BenchSpec) -> pd.DataFrame:
    """Mean and standard error over seeds of best-so-far (metric units) after k answers; a run counts at k
    only if it reached k answers (runs stopped earlier by the clock drop out)."""
    rows = []
    for (budget, name), group in _groups(runs):
        longest = max((len(r.evaluations) for r in group), default=0)
        for k in range(1, longest + 1):
            vals = np.asarray([r.evaluations[k - 1].best_so_far for r in group if len(r.evaluations) >= k], float)
            mean, se, n = _mean_se(_in_metric_units(vals, spec.metric))
            rows.append(
                {"budget": budget, "optimizer": name, "evals": k, "mean_best": mean, "se_best": se, "n_runs": n}
            )
    return pd.DataFrame(rows, columns=["budget", "optimizer", "evals", "mean_best", "se_best", "n_runs"])


def _groups(runs: Sequence[RunRecord]):
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
    higher = METRICS[spec.metric]
    rows = []
    for budget in dict.fromkeys(r.budget for r in runs):
        finals: dict[str, dict[int, float]] = {}
        stats: dict[str, dict[str, float]] = {}
        for r in runs:
            if r.budget == budget:
                finals.setdefault(r.optimizer, {})[r.seed] = float(_in_metric_units(r.final_best, spec.metric))
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
                    f"mean_best_{spec.metric}": mean,
                    f"se_best_{spec.metric}": se,
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
        f"mean_best_{spec.metric}",
        f"se_best_{spec.metric}",
        "n_seeds",
        "p_wilcoxon_vs_best",
        "best",
        "mean_evals",
        "mean_cost_s",
    ]
    return pd.DataFrame(rows, columns=cols)


def leaderboard_markdown(board: pd.DataFrame, spec: BenchSpec, backend_label: str, name: Optional[str] = None) -> str:
    """The leaderboard as Markdown tables, one per budget, saying which backend answered."""
    m = spec.metric
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
        unit = f"best {spec.metric} so far ({'higher' if METRICS[spec.metric] else 'lower'} is better)"
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
