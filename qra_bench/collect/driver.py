"""The driver: a collection's spec and report, the collector's space and design, and :func:`collect`, which
plans the jobs against the table and runs them on the chosen executor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from qra_bench.collect.designs import DESIGNS, load_importance, make_design
from qra_bench.collect.executors import EXECUTORS, _run_dask, _run_local
from qra_bench.collect.jobs import _Tracker, plan_jobs
from qra_bench.defaults import DEFAULT_TASK
from qra_bench.errors import QRBenchError
from qra_bench.leases import JobClaims
from qra_bench.recipe import TrialOptions
from qra_bench.space import DEFAULT_BITS, DEFAULT_RANKS, QRConfig, SearchSpace

if TYPE_CHECKING:  # heavy (torch); imported where used so that a spawned worker can set threads first
    from qra_bench.arch import ArchSpec
    from qra_bench.trial import TrialSettings

__all__ = ["CollectReport", "CollectSpec", "collect", "collect_space", "design_for"]


@dataclass(frozen=True, kw_only=True)
class CollectSpec:
    """One collection run (hashable; a rerun of the same spec resumes it).

    Parameters
    ----------
    out : table directory the rows are appended to.
    model, task : base model (name or local directory) and task name, as for ``qra-bench trial``.
    design, n, design_seed, design_file, importance_file, anchors : which configurations (see ``make_design``).
    seeds : every configuration runs once per seed.
    settings : trial recipe (default :class:`TrialSettings`); its ``threads`` is replaced by ``threads``.
    workers : worker processes (local) or LocalCluster workers (dask without ``address``).
    threads : torch CPU threads per worker.
    executor, address : ``local`` or ``dask``; a dask scheduler address (``tcp://host:8786``) or None for a
        LocalCluster.
    max_retries : a failed trial is run again up to this many times (earlier runs' attempts count).
    options : trial options beside the recipe (:class:`~qra_bench.recipe.TrialOptions`: lm-eval tasks scored at
        every checkpoint, gradient checkpointing); None: neither. A resume must score the same lm-eval tasks.
    """

    out: str
    model: str = "tiny"
    task: str = DEFAULT_TASK
    design: str = "stratified"
    n: int = 200
    seeds: tuple[int, ...] = (0,)
    settings: Optional["TrialSettings"] = None
    workers: int = 1
    threads: int = 1
    executor: str = "local"
    address: Optional[str] = None
    max_retries: int = 2
    design_seed: int = 0
    design_file: Optional[str] = None
    importance_file: Optional[str] = None
    anchors: bool = True
    options: Optional[TrialOptions] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", str(self.out))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if self.design not in DESIGNS:
            raise QRBenchError(f"unknown design {self.design!r}; choose one of {', '.join(DESIGNS)}")
        if self.executor not in EXECUTORS:
            raise QRBenchError(f"unknown executor {self.executor!r}; choose one of {', '.join(EXECUTORS)}")
        if self.address and self.executor != "dask":
            raise QRBenchError("--address is a dask scheduler address; it needs --executor dask")
        for name in ("n", "workers", "threads"):
            if getattr(self, name) < 1:
                raise QRBenchError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_retries < 0:
            raise QRBenchError(f"max-retries must be >= 0, got {self.max_retries}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise QRBenchError(f"seeds must be distinct and at least one, got {list(self.seeds)}")


@dataclass(frozen=True)
class CollectReport:
    """Counts of jobs (configuration x seed) and times (seconds) of one collection run.

    done : finished ok in this run. failed : no ok rows and every attempt used (``failed_before`` of them
    already in earlier runs). skipped : already complete in the table. pending : not finished (interrupted).
    failed_attempts : failed attempts in this run, retried or not. wall_s : the collector's wall time.
    trial_s : sum of this run's trials' own ``time_total_s`` (failed attempts included).
    """

    out: str
    n_jobs: int
    done: int
    failed: int
    failed_before: int
    skipped: int
    pending: int
    failed_attempts: int
    wall_s: float
    trial_s: float
    interrupted: bool = False
    failures: tuple[str, ...] = ()

    def summary(self) -> str:
        head = "interrupted" if self.interrupted else "collected"
        failed = f"{self.failed} failed" + (f" ({self.failed_before} in earlier runs)" if self.failed_before else "")
        text = (
            f"{head}: {self.n_jobs} jobs: {self.done} done, {failed}, {self.skipped} skipped (already in the table), "
            f"{self.pending} pending; {self.failed_attempts} failed attempts; wall {self.wall_s:.1f} s, "
            f"trials {self.trial_s:.1f} s -> {self.out}"
        )
        if self.interrupted:
            text += "; rerun the same command to resume"
        return text


def collect_space(arch: "ArchSpec", backend: str) -> SearchSpace:
    """The collector's space: the default ladders, bits restricted to what ``backend`` can store."""
    from qra_bench.memory import supported_bits

    allowed = supported_bits(backend)
    return SearchSpace(arch.n_blocks, bits=tuple(b for b in DEFAULT_BITS if b in allowed), ranks=DEFAULT_RANKS)


def _arch_for(model: str) -> "ArchSpec":
    """The architecture of a base model from its config alone (no weights are loaded)."""
    from qra_bench.arch import ArchSpec, list_presets, load_arch
    from qra_bench.models import BASE_MODELS

    if model in BASE_MODELS and model in list_presets():
        return load_arch(model)
    path = Path(model)
    if path.is_dir() and (path / "config.json").is_file():
        return ArchSpec.from_json(path / "config.json", name=str(path))
    raise QRBenchError(
        f"unknown model {model!r}; use one of {list(BASE_MODELS)} or a local transformers model directory"
    )


def design_for(spec: CollectSpec, settings: "TrialSettings") -> list[QRConfig]:
    """The configurations of ``spec``'s design for its model's architecture and the trial's backend."""
    from qra_bench.memory import MemoryModel, MemorySettings, storage_layout

    arch = _arch_for(spec.model)
    space = collect_space(arch, settings.quant.backend)
    memory_model = None
    if spec.design == "stratified":
        # Bins in 16-bit storage (MemorySettings' defaults) with the trial's layout: one binning for every
        # device and dtype a trial may run in, so a design (and its resume) does not depend on the machine.
        memory_model = MemoryModel(
            arch, MemorySettings(backend=storage_layout(settings.quant), group_size=settings.quant.group_size), space
        )
    q = r = None
    if spec.importance_file:
        q, r = load_importance(spec.importance_file, arch.n_blocks)
    return make_design(
        spec.design,
        space,
        spec.n,
        spec.design_seed,
        memory_model=memory_model,
        importance_q=q,
        importance_r=r,
        path=spec.design_file,
        anchors=spec.anchors,
    )


def collect(spec: CollectSpec, progress: bool = True) -> CollectReport:
    """Run ``spec``'s design x seeds into the table ``spec.out``, resuming what is already there.

    Returns a :class:`CollectReport`; on Ctrl-C the workers are stopped, finished trials stay in the table and
    the report has ``interrupted=True`` (the CLI then exits with status 130).
    """
    from qra_bench.trial import TrialSettings

    t0 = time.perf_counter()
    if spec.options is not None:  # bad lm-eval options: an error before any worker or table file
        spec.options.check()
    settings = replace(spec.settings or TrialSettings(), threads=spec.threads)
    configs = design_for(spec, settings)
    plan = plan_jobs(spec, configs, settings)
    tracker = _Tracker(spec, len(plan.jobs), progress)
    interrupted = False
    claims = None
    try:
        if plan.jobs:
            # Leases let several collectors share the table: each job runs in one of them only.
            claims = JobClaims(spec.out, settings.checkpoints(), settings.max_steps, spec.max_retries)
            (_run_local if spec.executor == "local" else _run_dask)(spec, plan.jobs, tracker, claims)
    except KeyboardInterrupt:  # the executor has stopped its workers; finished trials are in the table
        interrupted = True
    finally:
        tracker.close()
        if claims is not None:
            claims.close()
    elsewhere = len(claims.done_elsewhere) if claims else 0
    exhausted = plan.exhausted + (claims.exhausted if claims else [])
    unfinished = len(plan.jobs) - tracker.done - tracker.failed - elsewhere - (len(exhausted) - len(plan.exhausted))
    return CollectReport(
        out=spec.out,
        n_jobs=plan.n_jobs,
        done=tracker.done,
        failed=tracker.failed + len(exhausted),
        failed_before=len(exhausted),
        skipped=plan.skipped + elsewhere,
        pending=unfinished,
        failed_attempts=tracker.failed_attempts,
        wall_s=time.perf_counter() - t0,
        trial_s=tracker.trial_s,
        interrupted=interrupted,
        failures=tuple(exhausted + tracker.failures),
    )
