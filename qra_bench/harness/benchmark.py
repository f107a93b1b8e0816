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
import numbers
import warnings
from pathlib import Path
from typing import Optional

import pandas as pd

from qra_bench.arch import ArchSpec
from qra_bench.data import PathLike
from qra_bench.errors import InfeasibleBudgetError, QRBenchError
from qra_bench.harness.backends.live import LiveBackend
from qra_bench.harness.backends.surrogate import load_surrogates, surrogate_answer
from qra_bench.harness.backends.table import TableIndex, available_benchmarks, resolve_table
from qra_bench.harness.results import METRICS, CostModel, InfeasibleConfigError, NotInTableError, Result
from qra_bench.memory import Budget, MemoryModel, MemorySettings, solve_seq_len
from qra_bench.recipe import recorded_options, table_recipe
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

BENCHMARK_BACKENDS: tuple[str, ...] = ("table", "surrogate", "live", "table+live")


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
        self._index = TableIndex(frame)
        self.fidelities = self._index.fidelities
        self._live = LiveBackend(model_name, task_name, recipe, live_table, options=recorded_options(frame))
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
            surrogates = load_surrogates(name, table_path, surrogate, metric, space, root)
        model_name, task_name, recipe = table_recipe(frame, table_path)
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
            model_name=model_name,
            task_name=task_name,
            content_hash=ts.content_hash,
            live_table=Path(live_table) if live_table else table_path,
            memory_offset=offset,
        )

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
        at = self._index.configs_at(fidelity)
        fits = {h for h, cfg in at.items() if self._on_ladder(cfg) and self.memory_model.is_feasible(cfg, self.budget)}
        return [at[h] for h in sorted(fits)]

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
            answer = surrogate_answer(self.surrogates, config, fidelity, name=self.name, cost_model=self.cost_model)
        elif self.backend == "live":
            answer = self._live.answer(config, fidelity, seed, name=self.name, index=self._index)
        else:
            try:
                answer = self._index.answer(config, fidelity, seed, name=self.name, cost_model=self.cost_model)
            except NotInTableError:
                if self.backend != "table+live":
                    raise
                answer = self._live.answer(config, fidelity, seed, name=self.name, index=self._index)
        return Result(
            config=config,
            fidelity=fidelity,
            seed=int(seed),
            accuracy=float(answer.accuracy),
            eval_loss=float(answer.eval_loss),
            metric=self.metric,
            cost_s=float(answer.cost_s),
            cost_kind=answer.cost_kind,
            memory=self.memory_model.breakdown(config),
            budget_bytes=self.budget.bytes,
            backend=answer.backend,
            seeds=answer.seeds,
            exact_seed=answer.exact_seed,
            accuracy_std=answer.accuracy_std,
            eval_loss_std=answer.eval_loss_std,
        )

    # -- description -----------------------------------------------------------------------------------------
    def describe(self) -> str:
        """A few lines: table, backend, budget (bytes), space, fidelities, cost model."""
        n_cfg = self._index.n_configs
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
