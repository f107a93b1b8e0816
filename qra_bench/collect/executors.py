"""Executors: run the planned jobs on local spawned processes or on a Dask cluster.

Both claim (lease) each job just before it runs and hand every outcome to the driver's tracker, which decides
retries. See :mod:`qra_bench.collect` for what each executor guarantees.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
import traceback
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from qra_bench.collect.jobs import Job, JobOutcome, _one_line, _Tracker, run_job
from qra_bench.errors import QRBenchError

if TYPE_CHECKING:
    from qra_bench.collect.driver import CollectSpec
    from qra_bench.leases import JobClaims

__all__ = ["EXECUTORS", "run_job_once"]

EXECUTORS: tuple[str, ...] = ("local", "dask")


def _set_thread_env(threads: int) -> None:
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)


def _die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when the driver dies (Linux), so no orphan writes a trial twice."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the driver died before prctl took effect
        os._exit(1)


def _local_worker(conn, threads: int, parent_pid: int) -> None:
    """A local worker process: receive jobs until None or the driver is gone; send back outcomes."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    _set_thread_env(threads)
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            outcome = run_job(job)
        except Exception as exc:  # the table could not be written: the driver records the attempt
            outcome = JobOutcome(
                job.config.hash,
                job.seed,
                job.attempt,
                "crashed",
                0.0,
                os.getpid(),
                error=f"{_one_line(exc)}\n{traceback.format_exc(limit=3)}",
            )
        try:
            conn.send(outcome)
        except (EOFError, OSError):
            return


class _Worker:
    def __init__(self, ctx, threads: int) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_local_worker, args=(child, threads, os.getpid()), daemon=True, name="qra-bench-worker"
        )
        self.process.start()
        child.close()
        self.job: Optional[Job] = None
        self.started = 0.0

    def send(self, job: Job) -> None:
        self.job, self.started = job, time.perf_counter()
        self.conn.send(job)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit; terminate it when it is busy or does not exit at once.

        An idle worker holds nothing unsaved, so it is not waited for: the interpreter's own teardown with
        torch loaded takes over a second, which would be collector overhead.
        """
        if self.process.is_alive() and self.job is None:
            try:
                self.conn.send(None)
            except (OSError, ValueError):
                pass
            self.process.join(0.2)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout)
        self.conn.close()


def _run_local(spec: CollectSpec, jobs: Sequence[Job], tracker: _Tracker, claims: "JobClaims") -> None:
    """Run ``jobs`` on ``spec.workers`` spawned processes; on any exit (Ctrl-C included) stop every worker.

    A job is claimed (leased) just before it is sent to a worker and released when it is over."""
    ctx = multiprocessing.get_context("spawn")
    pending = deque(jobs)
    workers = [_Worker(ctx, spec.threads) for _ in range(min(spec.workers, len(pending)))]
    try:
        while pending or claims.waiting or any(w.job is not None for w in workers):
            for w in workers:
                if w.job is None and w.process.is_alive():
                    job = claims.next(pending)
                    if job is not None:
                        w.send(job)
            busy = [w for w in workers if w.job is not None]
            multiprocessing.connection.wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=2.0)
            for i, w in enumerate(workers):
                if w.job is None:
                    if not w.process.is_alive() and pending:
                        w.stop()
                        workers[i] = _Worker(ctx, spec.threads)
                    continue
                outcome = None
                try:
                    if w.conn.poll():
                        outcome = w.conn.recv()
                except (EOFError, OSError):
                    outcome = None
                if outcome is None and w.process.is_alive():
                    continue
                job, w.job = w.job, None
                if outcome is None:  # died mid-trial (e.g. killed by the OOM killer): the driver records it
                    code = w.process.exitcode
                    outcome = JobOutcome(
                        job.config.hash,
                        job.seed,
                        job.attempt,
                        "crashed",
                        time.perf_counter() - w.started,
                        -1,
                        error=f"worker process died (exit code {code}) while running the trial",
                    )
                    w.stop()
                    workers[i] = _Worker(ctx, spec.threads)
                retry = tracker.handle(job, outcome)
                if retry is not None:
                    pending.append(retry)
                else:
                    claims.release(job)
    finally:
        for w in workers:
            if w.job is not None:
                w.process.terminate()
        for w in workers:
            w.stop()


def run_job_once(job: Job) -> JobOutcome:
    """:func:`run_job`, unless the job's ok rows are already in the table (read from new parts only).

    Dask runs a task again when its worker dies, even after the trial's part was written: the task's result
    lived on the dead worker. Under a lease no other collector runs the job, so ok rows mean this very
    task finished before; it is reported as done instead of being run twice.
    """
    from qra_bench.leases import TableWatch

    watch = TableWatch(Path(job.out))
    watch.refresh()
    if all((job.config.hash, job.seed, step) in watch.ok for step in job.settings.checkpoints()):
        return JobOutcome(
            job.config.hash,
            job.seed,
            job.attempt,
            "ok",
            0.0,
            os.getpid(),
            error="already in the table: a rerun of a task whose worker died after writing it",
        )
    return run_job(job)


def _run_dask(spec: CollectSpec, jobs: Sequence[Job], tracker: _Tracker, claims: "JobClaims") -> None:
    """Run ``jobs`` on a Dask cluster; on any exit (Ctrl-C included) cancel what is left and close the client.

    Jobs are claimed (leased) as they are submitted, one more than there are workers, so another collector
    on the same table takes the rest. A worker that dies mid-trial wrote nothing (parts are atomic); the
    scheduler runs its trial again on another worker, and a trial that still cannot finish is recorded
    as crashed here and retried like any failed attempt."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise QRBenchError("--executor dask needs the 'distributed' package: pip install distributed") from None

    cluster = None
    if spec.address:
        try:
            client = Client(spec.address, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise QRBenchError(f"cannot reach the dask scheduler at {spec.address!r}: {_one_line(exc)}") from None
    else:
        cluster = LocalCluster(
            n_workers=spec.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)
    futures: dict = {}
    try:
        # A LocalCluster starts in seconds; a batch-queue cluster may wait for its jobs, so no time limit there.
        client.wait_for_workers(spec.workers, timeout=300) if cluster is not None else client.wait_for_workers(1)
        pending = deque(jobs)
        stream = as_completed()
        window = max(1, len(client.scheduler_info().get("workers", {}))) + 1

        def top_up() -> None:
            while len(futures) < window:
                job = claims.next(pending)
                if job is None:
                    return
                new = client.submit(run_job_once, job, pure=False)
                futures[new] = job
                stream.add(new)

        top_up()
        while futures or pending or claims.waiting:
            if not futures:  # every job left is held by another collector: wait for it to finish or die
                time.sleep(claims.poll_s)
                top_up()
                continue
            future = next(stream)
            job = futures.pop(future)
            try:
                outcome = future.result()
            except Exception as exc:  # the worker died (KilledWorker) or could not write: record it here
                outcome = JobOutcome(
                    job.config.hash, job.seed, job.attempt, "crashed", 0.0, -1, error=f"dask: {_one_line(exc)}"
                )
            future.release()
            retry = tracker.handle(job, outcome)
            if retry is not None:
                pending.appendleft(retry)
            else:
                claims.release(job)
            top_up()
    finally:
        if futures:  # interrupted or failed: running trials are abandoned, never half-written (atomic parts)
            client.cancel(list(futures))
        client.close()
        if cluster is not None:
            cluster.close()
