"""Jobs: one trial each (a configuration and a seed), the worker function that runs one, and the driver's
side of a run: planning against the table (resume, the recipe guard, attempts across restarts) and counting
outcomes (retries, failures a worker could not record, the progress bar).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Optional, Sequence

from qra_bench.errors import QRBenchError
from qra_bench.recipe import LiveTrials, TrialFailed, TrialOptions, check_lm_eval, check_recipe
from qra_bench.space import QRConfig

if TYPE_CHECKING:
    import pandas as pd

    from qra_bench.collect.driver import CollectSpec  # the driver imports this module
    from qra_bench.trial import TrialSettings  # heavy (torch): imported where used, after a worker sets its threads

__all__ = ["Job", "JobOutcome", "plan_jobs", "run_job"]

log = logging.getLogger("qra_bench.collect")  # one logger for the whole collector, named after the package


@dataclass(frozen=True)
class Job:
    """One trial to run: a configuration and a seed, and its attempt number (1 = first, across restarts);
    ``options`` are the trial's options beside its recipe (lm-eval scoring, gradient checkpointing)."""

    config: QRConfig
    seed: int
    attempt: int
    model: str
    task: str
    settings: "TrialSettings"
    out: str
    options: Optional[TrialOptions] = None

    @property
    def label(self) -> str:
        return f"config {self.config.hash[:12]} seed {self.seed}"


@dataclass(frozen=True)
class JobOutcome:
    """What a worker reports back: no rows, only the status and times (seconds).

    status : ``ok``, ``failed`` (the trial raised; failed rows written), ``crashed`` (the worker could not
        run or record it; no rows written) or ``setup`` (the model or task could not be loaded).
    """

    config_hash: str
    seed: int
    attempt: int
    status: str
    trial_s: float
    pid: int
    error: Optional[str] = None
    part: Optional[str] = None


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]


def run_job(job: Job) -> JobOutcome:
    """Run one trial and append its rows (ok or failed) to ``job.out``; return a small summary.

    Module-level and picklable: the local pool and Dask workers both call it. The base model and task, and the
    lm-eval tasks of ``job.options``, are loaded once per process. A trial that raises is recorded as failed
    rows with the traceback's last lines; only a failure to load the model, task or lm-eval tasks, or to write
    the table, is reported without rows.
    """
    pid = os.getpid()
    tags = {"worker_pid": pid, "attempt": job.attempt}
    live = LiveTrials(job.model, job.task, job.settings, job.out, tags=tags, options=job.options)
    try:
        live.load()
        live.extras()
    except Exception as exc:  # every job of this process would fail the same way: stop the run
        return JobOutcome(
            job.config.hash,
            job.seed,
            job.attempt,
            "setup",
            0.0,
            pid,
            error=f"{_one_line(exc)} (loading model {job.model!r} and task {job.task!r} on pid {pid})",
        )
    try:
        result = live.run(job.config, job.seed, record_failure=True)
    except TrialFailed as failed:
        return JobOutcome(
            job.config.hash,
            job.seed,
            job.attempt,
            "failed",
            failed.seconds,
            pid,
            error=failed.error[:500],
            part=str(failed.part),
        )
    return JobOutcome(
        job.config.hash,
        job.seed,
        job.attempt,
        "ok",
        float(result.final.time_total_s or 0.0),
        pid,
        part=str(live.last_part),
    )


def _check_table_matches(frame: "pd.DataFrame", spec: CollectSpec, settings: "TrialSettings") -> None:
    """Refuse to resume into a table whose rows come from another model, task or trial recipe, or whose ok rows
    were scored with other lm-eval tasks."""
    check_recipe(frame, model=spec.model, task=spec.task, settings=settings, table=spec.out)
    check_lm_eval(frame, spec.options, table=spec.out)


@dataclass(frozen=True)
class _Plan:
    jobs: list[Job]
    n_jobs: int
    skipped: int
    exhausted: list[str]


def plan_jobs(spec: CollectSpec, configs: Sequence[QRConfig], settings: "TrialSettings") -> _Plan:
    """The jobs still to run, seed-major, after reading the table once.

    A job is skipped when all its ``(hash, seed, fidelity)`` keys are ok rows of the table; its attempt
    number counts the failed attempts (distinct ``run_id`` of failed rows of the same hash, seed and
    ``max_steps``) already recorded; one that has used ``1 + max_retries`` attempts is not run again.
    """
    from qra_bench.table import ResultsTable

    table = ResultsTable(spec.out)
    steps = settings.checkpoints()
    ok_keys: set = set()
    attempts: dict[tuple[str, int], int] = {}
    if table.exists:
        frame = table.read(dedupe=False, include_failed=True)
        _check_table_matches(frame, spec, settings)
        ok = frame[frame["status"] == "ok"]
        ok_keys = set(zip(ok["config_hash"], ok["seed"].astype(int), ok["fidelity"].astype(int)))
        failed = frame[(frame["status"] == "failed") & (frame["max_steps"] == settings.max_steps)]
        if not failed.empty:
            counts = failed.groupby(["config_hash", "seed"])["run_id"].nunique()
            attempts = {(h, int(s)): int(c) for (h, s), c in counts.items()}
    jobs, skipped, exhausted = [], 0, []
    for seed in spec.seeds:
        for cfg in configs:
            if all((cfg.hash, seed, step) in ok_keys for step in steps):
                skipped += 1
                continue
            used = attempts.get((cfg.hash, seed), 0)
            if used >= 1 + spec.max_retries:
                exhausted.append(f"config {cfg.hash[:12]} seed {seed}: {used} failed attempts in earlier runs")
                continue
            jobs.append(Job(cfg, seed, used + 1, spec.model, spec.task, settings, spec.out, spec.options))
    return _Plan(jobs, len(configs) * len(spec.seeds), skipped, exhausted)


class _Tracker:
    """Counts outcomes, decides retries, records failures a worker could not, drives the progress bar."""

    def __init__(self, spec: CollectSpec, n_run: int, progress: bool) -> None:
        from tqdm.auto import tqdm

        self.spec = spec
        self.done = self.failed = self.failed_attempts = 0
        self.trial_s = 0.0
        self.failures: list[str] = []
        self.bar = tqdm(
            total=n_run, disable=not progress, unit="trial", desc="collect", dynamic_ncols=True, file=sys.stderr
        )
        self._postfix()

    def _postfix(self) -> None:
        self.bar.set_postfix_str(
            f"done={self.done} failed={self.failed} retries={self.failed_attempts - self.failed}", refresh=False
        )

    def record_crash(self, job: Job, error: str, seconds: float) -> None:
        """Failed rows for an attempt whose worker died or could not write: written here by the driver."""
        live = LiveTrials(
            job.model, job.task, job.settings, job.out, tags={"attempt": job.attempt}, options=job.options
        )
        live.record_failure(job.config, job.seed, error, seconds)

    def handle(self, job: Job, outcome: JobOutcome) -> Optional[Job]:
        """Count ``outcome``; return the job's next attempt when it failed and may be retried."""
        if outcome.status == "setup":
            raise QRBenchError(f"a worker could not start: {outcome.error}")
        self.trial_s += outcome.trial_s
        if outcome.status == "ok":
            self.done += 1
            self._postfix()
            self.bar.update(1)
            return None
        if outcome.status == "crashed":
            self.record_crash(job, outcome.error or "crashed", outcome.trial_s)
        self.failed_attempts += 1
        log.info("%s attempt %d failed: %s", job.label, job.attempt, outcome.error)
        if job.attempt < 1 + self.spec.max_retries:
            self._postfix()
            self.bar.refresh()
            return replace(job, attempt=job.attempt + 1)
        self.failed += 1
        self.failures.append(
            f"{job.label}: {job.attempt} failed attempts, last: {(outcome.error or '').splitlines()[0][:200]}"
        )
        self._postfix()
        self.bar.update(1)
        return None

    def close(self) -> None:
        self.bar.close()
