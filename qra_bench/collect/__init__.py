"""The collector: a design (which configurations to run) times an executor -> rows of a results table.

Designs are pure functions of the search space and a seed that return ``list[QRConfig]``, deduplicated by
configuration hash, the anchor configurations first (every uniform configuration of the ladders: bits
2/3/4/8/16 times every rank):

``random``          uniform over the space.
``stratified``      binned by total training memory so that every bin between the smallest configuration
                    and fp16-lora is covered evenly, with extra density just below and above uniform-4bit
                    (the budgets people care about: uniform-4bit and 0.3-1.0 of fp16-lora).
``space-filling``   a Latin hypercube over the 2L rung positions, snapped to rungs.
``importance``      each block's rungs tilted towards high bits / ranks where its importance is high.
``file``            an explicit list (JSON lines or CSV of bits and ranks).
``anchors``         only the anchor configurations.

A *job* is one (configuration, seed). Every job runs one trial (:func:`qra_bench.trial.run_trial`) that
writes its rows, one per fidelity checkpoint, as its own part file of the table (:class:`ResultsTable`
parts are written atomically), so the driver never holds results and a crash at any moment loses at most
the trials that had not finished. A rerun of the same command resumes: a job is skipped when all its
``(config_hash, seed, fidelity)`` keys are already in the table as ok rows. A failed trial is recorded as
failed rows carrying its error and retried up to ``max_retries`` times; earlier failed attempts in the table
count, so the limit holds across restarts and a job whose attempts are used up is reported, never dropped.

Executors
---------
``local``   ``workers`` processes started with "spawn", each with its own torch thread count. They die with
            the driver (Linux ``PR_SET_PDEATHSIG``), so a ``kill -9`` of the driver leaves no orphan that
            could write a trial twice. Ctrl-C stops every worker, keeps what finished, exits with 130.
``dask``    ``distributed``: a ``LocalCluster(n_workers=workers, threads_per_worker=1)`` by default, or the
            scheduler at ``address``. The table directory and the model must be reachable from every worker
            (a shared file system), and qra-bench installed there.

A SLURM cluster through ``dask_jobqueue`` (``pip install qra-bench[dask]``): start the scheduler in one
long-lived Python process and give its address to the collector::

    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(queue="cpu", cores=4, processes=4, memory="16GB", walltime="04:00:00",
                           job_script_prologue=["source /path/to/qra-bench/.venv/bin/activate"])
    cluster.scale(jobs=8)             # 8 SLURM jobs x 4 single-threaded dask workers
    print(cluster.scheduler_address)  # e.g. tcp://10.0.0.5:8786
    input("scheduler running; press Enter to stop")

    $ qra-bench collect --executor dask --address tcp://10.0.0.5:8786 --design stratified --n 200 \\
          --seeds 0,1,2 --out /shared/tables/tiny-news

Each dask worker runs one trial at a time with ``--threads`` torch threads; ``processes`` x threads should
match the cores of a SLURM job.

The package
-----------
:mod:`~qra_bench.collect.designs` (the designs), :mod:`~qra_bench.collect.jobs` (a job, the worker function,
planning and retries), :mod:`~qra_bench.collect.executors` (local processes, Dask) and
:mod:`~qra_bench.collect.driver` (:func:`collect`, :class:`CollectSpec`, :class:`CollectReport`). Every name
is importable from ``qra_bench.collect``.
"""

from __future__ import annotations

from qra_bench.collect.designs import (
    ANCHOR_BITS,
    DESIGNS,
    MemoryBin,
    anchor_configs,
    file_design,
    importance_design,
    load_importance,
    make_design,
    memory_bins,
    random_design,
    space_filling_design,
    stratified_design,
)
from qra_bench.collect.driver import CollectReport, CollectSpec, collect, collect_space
from qra_bench.collect.driver import design_for as design_for
from qra_bench.collect.executors import EXECUTORS
from qra_bench.collect.executors import run_job_once as run_job_once
from qra_bench.collect.jobs import Job, JobOutcome, run_job
from qra_bench.collect.jobs import _check_table_matches as _check_table_matches
from qra_bench.collect.jobs import plan_jobs as plan_jobs
from qra_bench.space import DEFAULT_BITS as DEFAULT_BITS
from qra_bench.space import DEFAULT_RANKS as DEFAULT_RANKS

__all__ = [
    "ANCHOR_BITS",
    "DESIGNS",
    "EXECUTORS",
    "CollectReport",
    "CollectSpec",
    "Job",
    "JobOutcome",
    "MemoryBin",
    "anchor_configs",
    "collect",
    "collect_space",
    "file_design",
    "importance_design",
    "load_importance",
    "make_design",
    "memory_bins",
    "random_design",
    "run_job",
    "space_filling_design",
    "stratified_design",
]
