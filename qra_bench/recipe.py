"""A results table's trial recipe, and live trials run with it.

Every row of a table records the recipe its trial ran with (``trial_settings``, the JSON of
:class:`~qra_bench.trial.TrialSettings`) and its base model and task. This module rebuilds that recipe
(:func:`settings_from_recipe`, :func:`table_recipe`), guards a table against rows of another recipe
(:func:`check_recipe`), and runs real trials of configurations that append their rows to a table
(:class:`LiveTrials`, with the base model and task loaded once per process by :func:`base_and_task`), with
options beside the recipe (:class:`TrialOptions`: lm-eval scoring, gradient checkpointing) whose lm-eval
tasks a table is also guarded against (:func:`check_lm_eval`).

Nothing here imports torch until a trial settings object is built or a trial runs.
"""

from __future__ import annotations

import dataclasses
import json
import time
import traceback
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence

from qra_bench.data import PathLike
from qra_bench.errors import QRBenchError
from qra_bench.space import QRConfig

if TYPE_CHECKING:  # torch-importing modules, loaded only when a trial's settings are built or a trial runs
    import pandas as pd

    from qra_bench.models import BaseModel
    from qra_bench.table_schema import TrialRow
    from qra_bench.tasks.base import TaskData
    from qra_bench.trial import TrialResult, TrialSettings
    from qra_bench.trial_extras import TrialExtras

__all__ = [
    "LiveTrials",
    "TrialFailed",
    "TrialOptions",
    "base_and_task",
    "check_lm_eval",
    "check_recipe",
    "recorded_options",
    "recorded_recipe",
    "settings_from_recipe",
    "table_recipe",
    "table_value",
]


# ---------------------------------------------------------------------------------------------------------
# The recorded recipe
# ---------------------------------------------------------------------------------------------------------
def settings_from_recipe(
    recorded: Mapping[str, Any],
    *,
    quant_backend: Optional[str] = None,
    group_size: Optional[int] = None,
    steps: Optional[int] = None,
    threads: Optional[int] = None,
) -> "TrialSettings":
    """The :class:`~qra_bench.trial.TrialSettings` a table recorded, with optional overrides.

    Parameters
    ----------
    recorded
        A row's ``trial_settings`` as a dict (:func:`recorded_recipe`); missing fields take their defaults.
        Keys this qra-bench does not know are dropped with one warning listing them (new trials may then
        differ from the table's).
    quant_backend, group_size
        Replace the recorded quantization backend and group size.
    steps
        Replaces ``max_steps`` (the training steps of a trial).
    threads
        Replaces the torch CPU thread count (it changes speed and the last bits of the numbers, not the recipe).
    """
    from qra_bench.lora import LoraSettings
    from qra_bench.quant import QuantSettings
    from qra_bench.trial import TrialSettings

    dropped: list[str] = []

    def known(cls: type, values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        names = {f.name for f in dataclasses.fields(cls)}
        dropped.extend(prefix + k for k in values if k not in names)
        return {k: v for k, v in values.items() if k in names}

    kw = known(TrialSettings, recorded)
    kw["quant"] = QuantSettings(**known(QuantSettings, kw.get("quant") or {}, "quant."))
    kw["lora"] = LoraSettings(**known(LoraSettings, kw.get("lora") or {}, "lora."))
    if "fidelities" in kw:
        kw["fidelities"] = tuple(float(f) for f in kw["fidelities"])
    if dropped:
        warnings.warn(
            f"the table's trial settings have keys this qra-bench does not know ({', '.join(dropped)}); "
            "they were dropped, so new trials may not reproduce the table's recipe",
            stacklevel=2,
        )
    quant = kw["quant"]
    if quant_backend:
        quant = dataclasses.replace(quant, backend=quant_backend)
    if group_size is not None:
        quant = dataclasses.replace(quant, group_size=int(group_size))
    settings = TrialSettings(**{**kw, "quant": quant})
    if steps:
        settings = dataclasses.replace(settings, max_steps=int(steps))
    if threads:
        settings = dataclasses.replace(settings, threads=int(threads))
    return settings


def recorded_recipe(frame: "pd.DataFrame") -> dict[str, Any]:
    """The recipe the first of ``frame``'s rows recorded (its ``trial_settings`` JSON); empty when none did."""
    text = next(iter(frame["trial_settings"].dropna()), None) if "trial_settings" in frame else None
    return json.loads(text) if text else {}


def table_value(
    frame: "pd.DataFrame", column: str, table: PathLike, why: str = "real trials need a table of one model and task"
) -> str:
    """The one value of ``column`` (``model_name``, ``task_name``, ``backend``) over ``frame``'s rows; a one-line
    error that ends with ``why`` when they hold several."""
    values = tuple(sorted(set(frame[column].dropna().astype(str))))
    if len(values) != 1:
        raise QRBenchError(f"table {table} has {len(values)} values of {column} ({', '.join(values[:4])}); {why}")
    return values[0]


def table_recipe(frame: "pd.DataFrame", table: PathLike) -> tuple[str, str, dict[str, Any]]:
    """``(model name, task name, recorded recipe)`` of a table's rows; one line of error when they mix models or
    tasks (``table`` names the table in it)."""
    return table_value(frame, "model_name", table), table_value(frame, "task_name", table), recorded_recipe(frame)


def _comparable(text: str) -> dict[str, Any]:
    data = json.loads(text)
    data.pop("threads", None)  # a per-worker choice: does not change results
    return data


def check_recipe(frame: "pd.DataFrame", *, model: str, task: str, settings: "TrialSettings", table: PathLike) -> None:
    """Refuse to add rows of ``model``, ``task`` and ``settings`` to a table whose rows come from another model,
    task or trial recipe (the thread count does not count)."""
    if frame.empty:
        return
    # A local model directory is named by the path it was given as; compare the last component only, so
    # that a relative and an absolute path to it agree.
    got_models = {Path(m).name for m in frame["model_name"].unique()}
    if got_models != {Path(model).name}:
        raise QRBenchError(
            f"table {table} holds rows of model {sorted(got_models)}; this run uses {model!r}. Use another --out"
        )
    got_tasks = set(frame["task_name"].unique())
    if got_tasks != {task}:
        raise QRBenchError(
            f"table {table} holds rows of task {sorted(got_tasks)}; this run uses {task!r}. Use another --out"
        )
    mine = _comparable(settings.to_json())
    for text in frame["trial_settings"].unique():
        theirs = _comparable(text)
        if theirs != mine:
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise QRBenchError(
                f"table {table} holds rows of other trial settings (differing: {', '.join(diff)}); "
                "a resume must use the same recipe. Use another --out"
            )


# ---------------------------------------------------------------------------------------------------------
# Options beside the recipe
# ---------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TrialOptions:
    """Options of live trials beside their recipe: lm-eval scoring and gradient checkpointing.

    They are not part of ``trial_settings`` (a table's recipe); each row records what they did in its
    ``extra_metrics`` instead (``lm_eval`` per-task accuracies and their mean, ``grad_checkpointing``).

    Parameters
    ----------
    eval_tasks : lm-eval tasks scored at every checkpoint (comma-separated shipped task names, ``shipped``,
        task YAML files or lm-eval names); a row's ``accuracy`` becomes their mean. None: no lm-eval scoring.
    eval_limit : examples per lm-eval task (None: all).
    eval_metric : the metric per lm-eval task, ``acc`` or ``acc_norm``.
    grad_checkpointing : recompute block activations in the backward pass (less memory, same numbers).
    """

    eval_tasks: Optional[str] = None
    eval_limit: Optional[int] = None
    eval_metric: str = "acc"
    grad_checkpointing: bool = False

    def check(self) -> tuple[str, ...]:
        """Validate the options before anything expensive; return the names of the lm-eval tasks a row scored
        with them records (sorted; empty without ``eval_tasks``). The tasks are resolved once per process.

        Raises
        ------
        QRBenchError
            One line: an unknown metric, a limit below 1, or lm-eval tasks that do not resolve.
        """
        if self.eval_metric not in ("acc", "acc_norm"):
            raise QRBenchError(f"lm-eval metric {self.eval_metric!r}: choose acc or acc_norm")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise QRBenchError(f"lm-eval limit {self.eval_limit} must be >= 1 examples per task")
        if not self.eval_tasks:
            return ()
        if self.eval_tasks not in _EVAL_TASK_NAMES:
            from qra_bench.tasks.lmeval import LmEvalSettings, load_eval_tasks, parse_eval_tasks

            loaded = load_eval_tasks(LmEvalSettings(tasks=parse_eval_tasks(self.eval_tasks)))
            _EVAL_TASK_NAMES[self.eval_tasks] = tuple(sorted(loaded["tasks"]))
        return _EVAL_TASK_NAMES[self.eval_tasks]

    def extras(self, tokenizer: Any) -> "TrialExtras":
        """The :class:`~qra_bench.trial_extras.TrialExtras` of these options for a base model's ``tokenizer``
        (the lm-eval task data are loaded here)."""
        from qra_bench.trial_extras import build_extras

        return build_extras(self.eval_tasks, tokenizer, self.eval_limit, self.eval_metric, self.grad_checkpointing)


_EVAL_TASK_NAMES: dict[str, tuple[str, ...]] = {}  # resolved lm-eval task names by --eval text, per process


def _lm_eval_tasks(text: Optional[str]) -> frozenset[str]:
    return frozenset((json.loads(text) if text else {}).get("lm_eval") or ())


def check_lm_eval(frame: "pd.DataFrame", options: Optional[TrialOptions], *, table: PathLike) -> None:
    """Refuse to add rows scored with ``options``' lm-eval tasks to a table whose ok rows were scored with
    other ones (their ``extra_metrics`` record ``lm_eval`` per task; rows without it were not scored)."""
    if frame.empty or "extra_metrics" not in frame:
        return
    mine = frozenset(options.check() if options is not None else ())
    ok = frame[frame["status"] == "ok"] if "status" in frame else frame
    for theirs in {_lm_eval_tasks(t if isinstance(t, str) else None) for t in ok["extra_metrics"].unique()}:
        if theirs != mine:
            raise QRBenchError(
                f"table {table} holds rows scored with lm-eval tasks {sorted(theirs) or 'none'}; this run scores "
                f"{sorted(mine) or 'none'}; a resume must use the same --eval. Use another --out"
            )


def recorded_options(frame: "pd.DataFrame") -> Optional[TrialOptions]:
    """The :class:`TrialOptions` a table's ok rows were run with, read back from their ``extra_metrics``
    (``lm_eval_setup`` and ``grad_checkpointing``), so that live trials on the table run as its rows did;
    None when the rows used none."""
    rows = frame[frame["status"] == "ok"] if "status" in frame else frame
    text = next(iter(rows["extra_metrics"].dropna()), None) if "extra_metrics" in rows else None
    extra = json.loads(text) if text else {}
    setup = (extra.get("lm_eval_setup") or {}).get("settings") or {}
    grad = bool(extra.get("grad_checkpointing", False))
    if not setup and not grad:
        return None
    tasks = setup.get("tasks")
    return TrialOptions(
        eval_tasks=",".join(tasks) if tasks else None,
        eval_limit=setup.get("limit"),
        eval_metric=setup.get("metric", "acc"),
        grad_checkpointing=grad,
    )


# ---------------------------------------------------------------------------------------------------------
# Live trials
# ---------------------------------------------------------------------------------------------------------
_LOADED: dict[tuple[str, str], tuple["BaseModel", "TaskData"]] = {}
_EXTRAS: dict[tuple[str, str, TrialOptions], "TrialExtras"] = {}


def base_and_task(model: str, task: str) -> tuple["BaseModel", "TaskData"]:
    """The base model (its checkpoint's sha256 verified) and the task's data, loaded once per process."""
    key = (model, task)
    if key not in _LOADED:
        from qra_bench.models import load_base
        from qra_bench.tasks import load_task

        base = load_base(model)
        _LOADED[key] = (base, load_task(task, base.tokenizer))
    return _LOADED[key]


class TrialFailed(Exception):
    """A live trial raised and was recorded as failed rows (:meth:`LiveTrials.run` with ``record_failure``).

    ``error`` is the exception's text, ``seconds`` the time the trial ran and ``part`` the part file of its rows.
    """

    def __init__(self, error: str, seconds: float, part: Path) -> None:
        super().__init__(error)
        self.error, self.seconds, self.part = error, seconds, part


def _with_metrics(text: Optional[str], values: Mapping[str, float]) -> str:
    data = json.loads(text) if text else {}
    data.update(values)
    return json.dumps(data)


class LiveTrials:
    """Real trials (:func:`qra_bench.trial.run_trial`) of one base model and task with one recipe, each trial's
    rows (one per checkpoint) appended to the table at ``table`` as one part file.

    ``options`` (lm-eval scoring, gradient checkpointing) apply to every trial; ``tags`` are added to the
    ``extra_metrics`` of every row written; ``progress`` receives one line when the base model and task are
    first needed. ``rows_appended`` counts the rows written and ``last_part`` is the part file of the last trial.
    """

    def __init__(
        self,
        model: str,
        task: str,
        settings: "TrialSettings",
        table: PathLike,
        *,
        tags: Optional[Mapping[str, float]] = None,
        progress: Optional[Callable[[str], None]] = None,
        options: Optional[TrialOptions] = None,
    ) -> None:
        self.model, self.task, self.settings, self.table = model, task, settings, Path(table)
        self.options = options
        self.tags = dict(tags or {})
        self.progress = progress
        self.rows_appended = 0
        self.last_part: Optional[Path] = None
        self._loaded = False

    def load(self) -> tuple["BaseModel", "TaskData"]:
        """The base model and task (:func:`base_and_task`)."""
        t0 = time.perf_counter()
        base, data = base_and_task(self.model, self.task)
        if not self._loaded and self.progress is not None:
            s = self.settings
            self.progress(
                f"base model {base.name} (sha256 {base.sha256[:16]}..., verified) and task {data.name} loaded in "
                f"{time.perf_counter() - t0:.1f} s; trials of {s.max_steps} steps, {s.quant.backend}, "
                f"{s.threads or 'default'} threads"
            )
        self._loaded = True
        return base, data

    def extras(self) -> Optional["TrialExtras"]:
        """The trials' :class:`~qra_bench.trial_extras.TrialExtras` (None without ``options``), built once per
        process per model, task and options: building them loads the lm-eval task data."""
        if self.options is None:
            return None
        key = (self.model, self.task, self.options)
        if key not in _EXTRAS:
            base, _ = self.load()
            _EXTRAS[key] = self.options.extras(base.tokenizer)
        return _EXTRAS[key]

    def run(self, config: QRConfig, seed: int, *, record_failure: bool = False) -> "TrialResult":
        """Run ``config`` at ``seed`` and append its rows; return the trial's result.

        Raises
        ------
        TrialFailed
            With ``record_failure``, in place of the trial's own exception: the trial was recorded as failed
            rows carrying the error and the traceback's last lines. Without it the exception propagates and
            nothing is written.
        """
        from qra_bench.provenance import utc_now_iso
        from qra_bench.trial import run_trial

        base, data = self.load()
        extras = self.extras()
        started_at, t0 = utc_now_iso(), time.perf_counter()
        try:
            result = run_trial(base, data, config, seed, self.settings, extras)
        except Exception as exc:
            if not record_failure:
                raise
            seconds = time.perf_counter() - t0
            error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            tb = "".join(traceback.format_tb(exc.__traceback__)[-3:])
            part = self.record_failure(config, seed, f"{error}\n{tb}", seconds, started_at)
            raise TrialFailed(error, seconds, part) from exc
        self._append(result.rows)
        return result

    def record_failure(
        self, config: QRConfig, seed: int, error: str, seconds: float, started_at: Optional[str] = None
    ) -> Path:
        """Append the failed rows of a trial of ``config`` at ``seed`` that ended with ``error`` after ``seconds``
        (started at ``started_at``, default now); return their part file."""
        from qra_bench.provenance import utc_now_iso
        from qra_bench.trial import failed_rows

        base, data = self.load()
        started_at = started_at or utc_now_iso()
        return self._append(failed_rows(base, data, config, seed, self.settings, error, started_at, seconds).rows)

    def _append(self, rows: Sequence["TrialRow"]) -> Path:
        from qra_bench.table import ResultsTable

        if self.tags:
            rows = [dataclasses.replace(r, extra_metrics=_with_metrics(r.extra_metrics, self.tags)) for r in rows]
        self.last_part = ResultsTable(self.table).append(rows)
        self.rows_appended += len(rows)
        return self.last_part
