"""A benchmark: ``objective(config, fidelity, seed) -> Result`` over a shipped results table, its surrogate, or
live trials, under one memory budget.

A :class:`Benchmark` is built from a results table (a name under the data root, :mod:`qra_bench.data`, or any
table directory).
It rebuilds the table's search space and :class:`~qra_bench.memory.MemoryModel` from the recipe its trials
recorded (base model, quantization backend, group size, device dtype, batch, and the sequence length solved
from the recorded activation bytes), so every configuration's bytes match the table's ``mem_predicted_bytes``
exactly, and it holds the memory budget: an over-budget configuration is refused with
:class:`InfeasibleConfigError` (use :meth:`Benchmark.repair`).

Backends (the record says which one answered; the optimizer is only told the quality):

``table``
    Lookup only. A ``(config, fidelity)`` that is not in the table raises :class:`NotInTableError`. A seed
    that is not in the table for a configuration that is falls back to the **mean over the seeds the table
    has** for that configuration and fidelity (``Result.seeds`` lists them and ``Result.exact_seed`` is
    False): a tabular benchmark with one or two seeds per configuration can still be replayed with more
    optimizer seeds. The table backend therefore serves *pool-based* optimizers, which propose from
    :meth:`Benchmark.pool`; anything else belongs on ``surrogate`` (the runner's default) or ``table+live``.
``surrogate``
    Any configuration of the space: the fitted surrogate's predictive mean and std
    (``surrogates/<name>/<model>/``, bound to the table's content hash). Deterministic: the seed is recorded
    but no noise is sampled.
``live``
    A real trial (:func:`qra_bench.trial.run_trial`) with the table's model, task and recipe; its rows (every
    checkpoint) are appended to the table (or to ``live_table``).
``table+live``
    The table backend, and a live trial for whatever it would refuse with :class:`NotInTableError`.

Simulated cost (seconds) of an answer: a table row's measured ``time_total_s`` (the trial's wall time up to
that checkpoint; the mean over the seeds averaged), a live trial's measured one, or for the surrogate the
:class:`CostModel`'s prediction: the median ``time_total_s`` of the table's rows at that fidelity, linearly
interpolated between the table's fidelities (proportional to the fidelity outside them). One figure for
every configuration, so the surrogate's clock does not favour configurations that happen to be in the table.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import numbers
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import pandas as pd

from qra_bench.arch import ArchSpec
from qra_bench.data import surrogates_dir, table_location, tables_dir
from qra_bench.errors import InfeasibleBudgetError, QRBenchError
from qra_bench.memory import Budget, MemoryBreakdown, MemoryModel, MemorySettings, solve_seq_len
from qra_bench.search.base import Priors, SearchContext
from qra_bench.space import QRConfig, SearchSpace

__all__ = [
    "BENCHMARK_BACKENDS",
    "METRICS",
    "Benchmark",
    "CostModel",
    "InfeasibleConfigError",
    "NotInTableError",
    "Result",
    "available_benchmarks",
    "resolve_table",
]

PathLike = Union[str, os.PathLike]
BENCHMARK_BACKENDS: tuple[str, ...] = ("table", "surrogate", "live", "table+live")
#: Metrics a result carries, and whether higher is better.
METRICS: dict[str, bool] = {"accuracy": True, "eval_loss": False}
_FRAC_DIGITS = 6  # fidelity fractions are matched after rounding (the table stores step / max_steps)


def _repo_root() -> Path:
    """The source checkout (kept for callers that predate :mod:`qra_bench.data`; new code uses its
    ``tables_dir`` and ``surrogates_dir``, which honour ``$QRA_BENCH_DATA``)."""
    from qra_bench.data import checkout_root

    return checkout_root()


class NotInTableError(QRBenchError):
    """The table backend was asked for a configuration or fidelity that the table does not hold."""


class InfeasibleConfigError(QRBenchError):
    """A configuration exceeds the benchmark's memory budget."""


# ---------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Result:
    """One answer of :meth:`Benchmark.objective`.

    Attributes
    ----------
    accuracy, eval_loss
        Task accuracy (fraction) and evaluation loss (nats per target token); NaN where the backend has no
        value (e.g. no surrogate of that metric).
    accuracy_std, eval_loss_std
        The surrogate's predictive standard deviations; None for measured answers.
    metric
        The metric :attr:`quality` is made of (higher quality is always better).
    cost_s
        Simulated cost of obtaining the answer (seconds); ``cost_kind`` says whether it was ``"measured"``
        (table row or live trial) or ``"predicted"`` (:class:`CostModel`), NaN when the table has no timing.
    memory
        Itemized bytes of the configuration under the benchmark's memory model.
    backend
        ``"table"``, ``"surrogate"`` or ``"live"``: which backend answered.
    seeds, exact_seed
        The trial seeds the values come from (a table miss on the seed averages the table's seeds).
    """

    config: QRConfig
    fidelity: float
    seed: int
    accuracy: float
    eval_loss: float
    metric: str
    cost_s: float
    cost_kind: str
    memory: MemoryBreakdown
    budget_bytes: int
    backend: str
    seeds: tuple[int, ...] = ()
    exact_seed: bool = True
    accuracy_std: Optional[float] = None
    eval_loss_std: Optional[float] = None

    @property
    def quality(self) -> float:
        """What an optimizer is told: ``metric`` if higher is better, else its negative."""
        value = getattr(self, self.metric)
        return float(value) if METRICS[self.metric] else -float(value)

    @property
    def memory_bytes(self) -> int:
        return self.memory.total

    def to_dict(self) -> dict[str, Any]:
        """Flat, JSON-ready record (memory as its total and terms, bytes)."""
        return {
            "config_hash": self.config.hash,
            "bits": list(self.config.bits),
            "ranks": list(self.config.ranks),
            "fidelity": self.fidelity,
            "seed": self.seed,
            "accuracy": self.accuracy,
            "eval_loss": self.eval_loss,
            "accuracy_std": self.accuracy_std,
            "eval_loss_std": self.eval_loss_std,
            "metric": self.metric,
            "quality": self.quality,
            "cost_s": self.cost_s,
            "cost_kind": self.cost_kind,
            "memory_bytes": self.memory_bytes,
            "memory_terms": dict(self.memory.terms),
            "budget_bytes": self.budget_bytes,
            "backend": self.backend,
            "seeds": list(self.seeds),
            "exact_seed": self.exact_seed,
        }


@dataclass(frozen=True)
class CostModel:
    """Predicted cost of an answer at a fidelity (seconds): the table's median ``time_total_s`` per fidelity.

    ``fractions`` are the table's fidelities (fractions of the full run) and ``median_s`` the median wall
    time of a trial up to each. Between them the cost is interpolated linearly; outside them it is
    proportional to the fidelity (``median_s[0] * f / fractions[0]`` below, likewise above).
    """

    fractions: tuple[float, ...]
    median_s: tuple[float, ...]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> "CostModel":
        times = frame[["fidelity_frac", "time_total_s"]].astype(float)
        times = times[np.isfinite(times["time_total_s"]) & (times["time_total_s"] > 0)]
        med = times.groupby(times["fidelity_frac"].round(_FRAC_DIGITS))["time_total_s"].median().sort_index()
        return cls(tuple(float(f) for f in med.index), tuple(float(v) for v in med.to_numpy()))

    def seconds(self, fidelity: float) -> float:
        """Predicted seconds to reach ``fidelity``; NaN when the table recorded no times."""
        if not self.fractions:
            return math.nan
        f, s = self.fractions, self.median_s
        if fidelity <= f[0]:
            return s[0] * fidelity / f[0]
        if fidelity >= f[-1]:
            return s[-1] * fidelity / f[-1]
        return float(np.interp(fidelity, f, s))


# ---------------------------------------------------------------------------------------------------------
# Finding tables and surrogates
# ---------------------------------------------------------------------------------------------------------
def available_benchmarks(root: Optional[PathLike] = None) -> list[str]:
    """Names of the tables under the data root (:func:`qra_bench.data.tables_dir`: ``$QRA_BENCH_DATA/tables``,
    else the checkout's ``datasets_cache/tables``), directories and compacted ``<name>.parquet`` files."""
    tables = tables_dir(root)
    if not tables.is_dir():
        return []
    return sorted(
        {
            p.name if p.is_dir() else p.stem
            for p in tables.iterdir()
            if p.is_dir() or (p.is_file() and p.suffix == ".parquet")
        }
    )


def resolve_table(name_or_path: PathLike, root: Optional[PathLike] = None) -> tuple[str, Path]:
    """``(name, table path)``: an existing path (directory or compacted file) is taken as it is, a name is looked
    up under the data root (:func:`qra_bench.data.table_location`)."""
    path = Path(name_or_path)
    if path.is_dir() or (path.is_file() and path.suffix == ".parquet"):
        return (path.resolve().name if path.is_dir() else path.stem), path
    shipped = table_location(str(name_or_path), root)
    if shipped.exists():
        return str(name_or_path), shipped
    names = available_benchmarks(root)
    raise QRBenchError(
        f"unknown benchmark {str(name_or_path)!r}: no table directory there nor at {shipped}; "
        f"available: {', '.join(names) if names else 'none'} (or give a table directory)"
    )


def _surrogate_dirs(name: str, surrogate: PathLike, root: Optional[PathLike]) -> tuple[Path, Path]:
    """``(artifact directory, folder of its siblings)`` for a model kind (``xgb``) or an artifact path."""
    path = Path(surrogate)
    if (path / "manifest.json").is_file():
        return path, path.parent
    folder = surrogates_dir(root) / name
    return folder / str(surrogate), folder


# ---------------------------------------------------------------------------------------------------------
# The table's recipe: memory model, space, trial settings
# ---------------------------------------------------------------------------------------------------------
def _live_settings(recipe: dict):
    """The table's :class:`~qra_bench.trial.TrialSettings`; keys this qra-bench does not know are dropped
    with a warning (live trials may then differ from the table's)."""
    from qra_bench.lora import LoraSettings
    from qra_bench.quant import QuantSettings
    from qra_bench.trial import TrialSettings

    dropped: list[str] = []

    def build(cls, values: dict, prefix: str = ""):
        known = {f.name for f in dataclasses.fields(cls)}
        dropped.extend(prefix + k for k in values if k not in known)
        return {k: v for k, v in values.items() if k in known}

    kw = build(TrialSettings, recipe)
    if "quant" in kw:
        kw["quant"] = QuantSettings(**build(QuantSettings, kw["quant"], "quant."))
    if "lora" in kw:
        kw["lora"] = LoraSettings(**build(LoraSettings, kw["lora"], "lora."))
    if "fidelities" in kw:
        kw["fidelities"] = tuple(float(f) for f in kw["fidelities"])
    if dropped:
        warnings.warn(
            f"the table's trial settings have keys this qra-bench does not know ({', '.join(dropped)}); "
            "they were dropped, so live trials may not reproduce the table's recipe",
            stacklevel=3,
        )
    return TrialSettings(**kw)


class _Live:
    """Runs real trials with the table's base model, task and recipe (torch is imported on first use)."""

    def __init__(self, model_name: str, task_name: str, recipe: dict, out: Path) -> None:
        self.model_name, self.task_name, self.recipe, self.out = model_name, task_name, recipe, out
        self._base: Any = None  # BaseModel, TaskData and TrialSettings, loaded on the first live trial
        self._task: Any = None
        self._settings: Any = None

    @property
    def settings(self):
        if self._settings is None:
            self._settings = _live_settings(self.recipe)
        return self._settings

    def fractions(self) -> tuple[float, ...]:
        s = self.settings
        return tuple(round(step / s.max_steps, _FRAC_DIGITS) for step in s.checkpoints())

    def run(self, config: QRConfig, seed: int):
        from qra_bench.models import load_base
        from qra_bench.table import ResultsTable
        from qra_bench.tasks import load_task
        from qra_bench.trial import run_trial

        if self._base is None:
            self._base = load_base(self.model_name)
            self._task = load_task(self.task_name, self._base.tokenizer)
        result = run_trial(self._base, self._task, config, seed, self.settings)
        ResultsTable(self.out).append(list(result.rows))
        return result


class _TableIndex:
    """The table's ok rows as arrays, keyed by (config hash, fidelity fraction); live rows are added in place,
    so every :meth:`Benchmark.with_budget` copy sees them."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.hashes = frame["config_hash"].astype(str).tolist()
        self.configs = [QRConfig(bits=b, ranks=r) for b, r in zip(frame["bits"], frame["ranks"])]
        self.seed = frame["seed"].to_numpy(dtype=np.int64)
        self.frac = frame["fidelity_frac"].to_numpy(dtype=float).round(_FRAC_DIGITS)
        self.acc = frame["accuracy"].to_numpy(dtype=float, na_value=np.nan)
        self.loss = frame["eval_loss"].to_numpy(dtype=float, na_value=np.nan)
        self.time = frame["time_total_s"].to_numpy(dtype=float, na_value=np.nan)
        self.rows: dict[tuple[str, float], list[int]] = {}
        for i, (h, f) in enumerate(zip(self.hashes, self.frac)):
            self.rows.setdefault((h, float(f)), []).append(i)

    def add(self, rows: Sequence[Any]) -> None:
        ok = [r for r in rows if r.status == "ok"]
        start = len(self.hashes)
        nan = math.nan
        self.hashes += [r.config_hash for r in ok]
        self.configs += [QRConfig(bits=r.bits, ranks=r.ranks) for r in ok]
        self.seed = np.concatenate([self.seed, np.asarray([r.seed for r in ok], dtype=np.int64)])
        self.frac = np.concatenate([self.frac, np.round([float(r.fidelity_frac) for r in ok], _FRAC_DIGITS)])
        self.acc = np.concatenate([self.acc, [nan if r.accuracy is None else r.accuracy for r in ok]])
        self.loss = np.concatenate([self.loss, [nan if r.eval_loss is None else r.eval_loss for r in ok]])
        self.time = np.concatenate([self.time, [nan if r.time_total_s is None else r.time_total_s for r in ok]])
        for i in range(start, len(self.hashes)):
            self.rows.setdefault((self.hashes[i], float(self.frac[i])), []).append(i)


# ---------------------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------------------
class Benchmark:
    """``objective(config, fidelity, seed) -> Result`` over one table, one backend and one memory budget.

    Build it with :meth:`load`. Attributes: ``name``, ``table_path``, ``backend``, ``space``,
    ``memory_model``, ``budget`` (:class:`~qra_bench.memory.Budget`), ``metric``, ``fidelities`` (the table's,
    fractions of the run), ``cost_model``, ``priors`` (cached importance priors of the table's model and task,
    or None), ``surrogates`` (metric -> :class:`~qra_bench.surrogate.SurrogateArtifact`).
    """

    def __init__(
        self,
        *,
        name: str,
        table_path: Path,
        backend: str,
        frame: pd.DataFrame,
        space: SearchSpace,
        memory_model: MemoryModel,
        budget: Budget,
        metric: str,
        priors: Optional[Priors],
        surrogates: dict,
        recipe: dict,
        model_name: str,
        task_name: str,
        content_hash: str,
        live_table: Path,
        memory_offset: int = 0,
    ) -> None:
        self.name, self.table_path, self.backend, self.metric = name, table_path, backend, metric
        self.space, self.memory_model, self.priors, self.surrogates = space, memory_model, priors, surrogates
        self.recipe, self.model_name, self.task_name = recipe, model_name, task_name
        self.content_hash, self.live_table, self.memory_offset = content_hash, live_table, memory_offset
        self.cost_model = CostModel.from_frame(frame)
        self.fidelities = tuple(sorted(set(frame["fidelity_frac"].round(_FRAC_DIGITS).astype(float))))
        self._index = _TableIndex(frame)
        self._live = _Live(model_name, task_name, recipe, live_table)
        self.budget = self._check_budget(budget)

    # -- construction ----------------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        name_or_path: PathLike,
        backend: str = "surrogate",
        budget: "Budget | int | str | None" = None,
        *,
        metric: Optional[str] = None,
        surrogate: PathLike = "xgb",
        live_table: Optional[PathLike] = None,
        root: Optional[PathLike] = None,
    ) -> "Benchmark":
        """Open a benchmark.

        Parameters
        ----------
        name_or_path
            A scenario's name (``tiny-cipher``; see :mod:`qra_bench.scenarios`: its table, budget and metric are
            the defaults), a shipped table's name or a table directory.
        backend
            ``table``, ``surrogate``, ``live`` or ``table+live`` (see the module docstring).
        budget
            A budget string (``uniform-4bit``, ``0.8xfp16-lora``, ``60MiB``), bytes or a Budget, evaluated
            with the table's memory model; default: the scenario's budget, else ``uniform-4bit``.
        metric
            ``accuracy`` (higher is better) or ``eval_loss`` (lower is better): what the quality is made of.
        surrogate
            Surrogate model kind under ``surrogates/<name>/`` (``xgb``, ``gp``) or an artifact directory; used
            by the surrogate backend, which also uses sibling artifacts of the other metrics when present.
        live_table
            Where live trials append their rows (default: the benchmark's table).
        root
            Data root for names (default: ``$QRA_BENCH_DATA``, else this checkout; see :mod:`qra_bench.data`).
        """
        from qra_bench.surrogate.fit import training_set
        from qra_bench.table import ResultsTable

        if backend not in BENCHMARK_BACKENDS:
            raise QRBenchError(f"unknown backend {backend!r}; allowed: {', '.join(BENCHMARK_BACKENDS)}")
        if metric is not None and metric not in METRICS:
            raise QRBenchError(f"unknown metric {metric!r}; allowed: {', '.join(METRICS)}")
        from qra_bench.scenarios import default_budget, scenario_for

        scenario = scenario_for(name_or_path)
        if scenario is not None:
            metric = metric or scenario.metric
            name_or_path = scenario.table
        budget = default_budget(scenario.name if scenario else name_or_path) if budget is None else budget
        name, table_path = resolve_table(name_or_path, root)
        table = ResultsTable(table_path)
        frame = table.read()
        if frame.empty:
            raise QRBenchError(f"table {table_path} has no ok rows")
        if metric is None:
            from qra_bench.tasks import main_metric

            metric = main_metric(str(frame["task_name"].iloc[0]))
        # The surrogate layer already rebuilds a table's recipe (architecture, ladders, memory settings,
        # importance priors) and checks it reproduces mem_predicted_bytes; reuse it rather than a second copy.
        ts = training_set(table_path, target=metric)
        spec = ts.encoder_spec
        arch = ArchSpec(**spec.arch)
        settings, offset = solve_seq_len(arch, MemorySettings(**spec.memory_settings), spec.memory_offset)
        if offset:
            warnings.warn(
                f"the memory model of {name} differs from the table's mem_predicted_bytes by a constant "
                f"{offset:,} bytes (no sequence length explains it); budgets use seq_len "
                f"{settings.seq_len}",
                stacklevel=2,
            )
        space = SearchSpace(arch.n_blocks, bits=tuple(spec.bits), ranks=tuple(spec.ranks))
        memory_model = MemoryModel(arch, settings, space)
        priors = None
        if not ts.importance_source.startswith("none") and spec.importance_q:
            priors = Priors(importance_q=tuple(spec.importance_q), importance_r=tuple(spec.importance_r))
        surrogates = {}
        if backend == "surrogate":
            surrogates = cls._load_surrogates(name, table_path, surrogate, metric, space, root)
        recipe = json.loads(str(frame["trial_settings"].iloc[0]))
        if isinstance(budget, str):
            budget = memory_model.budget(budget)
        elif not isinstance(budget, Budget):
            budget = Budget(name=str(budget), bytes=budget)
        return cls(
            name=name,
            table_path=table_path,
            backend=backend,
            frame=frame,
            space=space,
            memory_model=memory_model,
            budget=budget,
            metric=metric,
            priors=priors,
            surrogates=surrogates,
            recipe=recipe,
            model_name=ts.table["model_name"],
            task_name=ts.table["task_name"],
            content_hash=ts.content_hash,
            live_table=Path(live_table) if live_table else table_path,
            memory_offset=offset,
        )

    @staticmethod
    def _load_surrogates(
        name: str, table_path: Path, surrogate: PathLike, metric: str, space: SearchSpace, root: Optional[PathLike]
    ) -> dict:
        """metric -> artifact: the named one (must predict ``metric``) and same-kind siblings of other metrics."""
        from qra_bench.surrogate import SurrogateArtifact

        primary, folder = _surrogate_dirs(name, surrogate, root)
        if not (primary / "manifest.json").is_file():
            raise QRBenchError(
                f"no surrogate for benchmark {name!r} at {primary}: fit one with `qra-bench fit --table {table_path} "
                f"--out {primary}`, or use --backend table"
            )
        main = SurrogateArtifact.load(primary, table_path=table_path)
        if main.target != metric:
            raise QRBenchError(
                f"surrogate {primary} predicts {main.target}, the benchmark's metric is {metric}; "
                f"fit one with --target {metric} or choose metric={main.target!r}"
            )
        if main.multi_fidelity:
            raise QRBenchError(
                f"surrogate {primary} is multi-fidelity (it needs an observed low-fidelity result); "
                "a benchmark needs one fitted with --fidelity all or full"
            )
        if (main.space.bits, main.space.ranks) != (space.bits, space.ranks):
            raise QRBenchError(
                f"surrogate {primary} has ladders bits {list(main.space.bits)} ranks "
                f"{list(main.space.ranks)}; the table's are {list(space.bits)} {list(space.ranks)}"
            )
        found = {metric: main}
        kind = main.manifest["model"]["kind"]
        for path in sorted(folder.glob("*/manifest.json")) if folder.is_dir() else []:
            try:
                manifest = json.loads(path.read_text())
                target = manifest["target"]["name"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if target in METRICS and target not in found and manifest.get("model", {}).get("kind") == kind:
                try:
                    other = SurrogateArtifact.load(path.parent, table_path=table_path)
                except QRBenchError as exc:  # a stale sibling must not block the metric the user asked for
                    warnings.warn(f"skipping surrogate {path.parent}: {exc}", stacklevel=3)
                    continue
                if not other.multi_fidelity:
                    found[target] = other
        return found

    def _check_budget(self, budget: Budget) -> Budget:
        smallest = self.memory_model.total_bytes(self.space.min_config())
        if smallest > budget.bytes:
            raise InfeasibleBudgetError(
                f"budget {budget.name!r} ({budget.bytes:,} bytes) of benchmark {self.name!r} is below its smallest "
                f"configuration ({smallest:,} bytes: bits {self.space.bits[0]}, rank {self.space.ranks[0]} everywhere)"
            )
        return budget

    def with_budget(self, budget: "Budget | int | str") -> "Benchmark":
        """The same benchmark (shared table index and surrogates) under another budget."""
        if isinstance(budget, str):
            budget = self.memory_model.budget(budget)
        elif not isinstance(budget, Budget):
            budget = Budget(name=str(budget), bytes=budget)
        other = copy.copy(self)
        other.budget = other._check_budget(budget)
        return other

    # -- the space under the budget --------------------------------------------------------------------------
    def is_feasible(self, config: QRConfig) -> bool:
        """Whether ``config`` fits the budget."""
        return self.memory_model.is_feasible(self.space.validate(config), self.budget)

    def repair(self, config: QRConfig) -> QRConfig:
        """:meth:`MemoryModel.repair` under the budget (with the priors when known)."""
        return SearchContext.build(self.space, self.memory_model, self.budget, self.priors).repair(config)

    def pool(self, fidelity: float = 1.0) -> list[QRConfig]:
        """The table's configurations with a row at ``fidelity`` that fit the budget, sorted by hash: what a
        pool-based optimizer chooses from on the table backend."""
        f = round(float(fidelity), _FRAC_DIGITS)
        seen: dict[str, QRConfig] = {}
        for (h, frac), rows in self._index.rows.items():
            if frac == f and h not in seen:
                cfg = self._index.configs[rows[0]]
                if self._on_ladder(cfg) and self.memory_model.is_feasible(cfg, self.budget):
                    seen[h] = cfg
        return [seen[h] for h in sorted(seen)]

    def _on_ladder(self, cfg: QRConfig) -> bool:
        try:
            self.space.validate(cfg)
        except QRBenchError:
            return False
        return True

    # -- the objective ---------------------------------------------------------------------------------------
    def objective(self, config: QRConfig, fidelity: float = 1.0, seed: int = 0) -> Result:
        """Evaluate ``config`` at ``fidelity`` (fraction of the full run) for trial ``seed``.

        Raises
        ------
        InfeasibleConfigError
            ``config`` exceeds the budget.
        NotInTableError
            Table backend: the table has no row of ``config`` at ``fidelity``.
        """
        if not isinstance(config, QRConfig):
            raise QRBenchError(
                f"config must be a QRConfig (e.g. benchmark.space.config(bits, ranks)), got {type(config).__name__}"
            )
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise QRBenchError(f"seed must be an integer, got {seed!r}")
        self.space.validate(config)
        if isinstance(fidelity, bool) or not isinstance(fidelity, numbers.Real):
            raise QRBenchError(f"fidelity must be a fraction of the run in (0, 1], got {fidelity!r}")
        fidelity = float(fidelity)
        if not 0.0 < fidelity <= 1.0:
            raise QRBenchError(f"fidelity must be a fraction of the run in (0, 1], got {fidelity:g}")
        total = self.memory_model.total_bytes(config)
        if total > self.budget.bytes:
            raise InfeasibleConfigError(
                f"configuration {config} needs {total:,} bytes; budget {self.budget.name!r} of benchmark "
                f"{self.name!r} allows {self.budget.bytes:,}: repair it first (Benchmark.repair)"
            )
        if self.backend == "surrogate":
            return self._from_surrogate(config, fidelity, seed)
        if self.backend == "live":
            return self._from_live(config, fidelity, seed)
        try:
            return self._from_table(config, fidelity, seed)
        except NotInTableError:
            if self.backend != "table+live":
                raise
        return self._from_live(config, fidelity, seed)

    def _result(
        self,
        config: QRConfig,
        fidelity: float,
        seed: int,
        backend: str,
        accuracy: float,
        eval_loss: float,
        cost_s: float,
        cost_kind: str,
        **kw: Any,
    ) -> Result:
        return Result(
            config=config,
            fidelity=fidelity,
            seed=int(seed),
            accuracy=float(accuracy),
            eval_loss=float(eval_loss),
            metric=self.metric,
            cost_s=float(cost_s),
            cost_kind=cost_kind,
            memory=self.memory_model.breakdown(config),
            budget_bytes=self.budget.bytes,
            backend=backend,
            **kw,
        )

    def _from_table(self, config: QRConfig, fidelity: float, seed: int) -> Result:
        f = round(fidelity, _FRAC_DIGITS)
        rows = self._index.rows.get((config.hash, f))
        if not rows:
            if f not in self.fidelities:
                raise NotInTableError(
                    f"fidelity {fidelity:g} is not in table {self.name!r}; its fidelities: "
                    f"{', '.join(f'{x:g}' for x in self.fidelities)}"
                )
            n = sum(1 for (_, frac) in self._index.rows if frac == f)
            raise NotInTableError(
                f"configuration {config} (hash {config.hash[:12]}) is not in table {self.name!r} ({n} configurations "
                f"at fidelity {fidelity:g}): the table backend answers only table configurations; use backend "
                "'surrogate' or 'table+live', or a pool-based optimizer (Benchmark.pool)"
            )
        exact = [i for i in rows if self._index.seed[i] == seed]
        use = np.asarray(exact or rows)
        cost = float(np.nanmean(self._index.time[use])) if np.isfinite(self._index.time[use]).any() else math.nan
        kind = "measured"
        if not math.isfinite(cost):
            cost, kind = self.cost_model.seconds(fidelity), "predicted"
        return self._result(
            config,
            fidelity,
            seed,
            "table",
            np.nanmean(self._index.acc[use]),
            np.nanmean(self._index.loss[use]),
            cost,
            kind,
            seeds=tuple(sorted(int(s) for s in self._index.seed[use])),
            exact_seed=bool(exact),
        )

    def _from_surrogate(self, config: QRConfig, fidelity: float, seed: int) -> Result:
        values: dict[str, tuple[float, Optional[float]]] = {}
        for metric in METRICS:
            art = self.surrogates.get(metric)
            if art is None:
                values[metric] = (math.nan, None)
                continue
            if not art.encoder_spec.include_fidelity and fidelity != 1.0:
                raise QRBenchError(
                    f"the {metric} surrogate of {self.name!r} was fitted on full-fidelity rows only; "
                    f"it cannot answer fidelity {fidelity:g}"
                )
            mean, std = art.predict_configs([config], fidelity_frac=fidelity)
            values[metric] = (float(mean[0]), float(std[0]))
        return self._result(
            config,
            fidelity,
            seed,
            "surrogate",
            values["accuracy"][0],
            values["eval_loss"][0],
            self.cost_model.seconds(fidelity),
            "predicted",
            seeds=(),
            exact_seed=False,
            accuracy_std=values["accuracy"][1],
            eval_loss_std=values["eval_loss"][1],
        )

    def _from_live(self, config: QRConfig, fidelity: float, seed: int) -> Result:
        fractions = self._live.fractions()
        f = round(fidelity, _FRAC_DIGITS)
        if f not in fractions:
            raise QRBenchError(
                f"a live trial of {self.name!r} is evaluated at fidelities "
                f"{', '.join(f'{x:g}' for x in fractions)}; {fidelity:g} is not one of them"
            )
        result = self._live.run(config, seed)
        self._index.add(result.rows)
        row = next(r for r in result.rows if round(r.fidelity_frac, _FRAC_DIGITS) == f)
        nan = math.nan
        if row.status != "ok":  # a failed trial is a NaN answer, as optimizers expect; its time was still spent
            return self._result(
                config,
                fidelity,
                seed,
                "live",
                nan,
                nan,
                row.time_total_s if row.time_total_s is not None else nan,
                "measured",
                seeds=(seed,),
            )
        return self._result(
            config,
            fidelity,
            seed,
            "live",
            row.accuracy if row.accuracy is not None else nan,
            row.eval_loss,
            row.time_total_s if row.time_total_s is not None else nan,
            "measured",
            seeds=(seed,),
        )

    # -- description -----------------------------------------------------------------------------------------
    def describe(self) -> str:
        """A few lines: table, backend, budget (bytes), space, fidelities, cost model."""
        n_cfg = len({h for (h, _) in self._index.rows})
        lines = [
            f"benchmark {self.name}: {self.table_path} ({n_cfg} configurations, hash {self.content_hash[:16]}), "
            f"model {self.model_name}, task {self.task_name}",
            f"backend {self.backend}; metric {self.metric} ({'higher' if METRICS[self.metric] else 'lower'} is better)",
            f"budget {self.budget.name}: {self.budget.bytes:,} bytes; {len(self.pool())} table configurations fit",
            f"space: {self.space.n_blocks} blocks, bits {list(self.space.bits)}, ranks {list(self.space.ranks)}",
            "predicted cost per fidelity: "
            + ", ".join(f"{f:g}: {s:.1f} s" for f, s in zip(self.cost_model.fractions, self.cost_model.median_s)),
        ]
        for metric, art in self.surrogates.items():
            lines.append(f"surrogate of {metric}: {art.manifest['model']['kind']} (table hash {art.table_hash[:16]})")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Benchmark({self.name!r}, backend={self.backend!r}, budget={self.budget.name!r})"
