"""Faults 1 and 3: two collectors on one table (leases), and a Dask worker killed mid-trial."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from faultlib.common import (
    BENCHMARKS,
    Outcome,
    PART_GLOB,
    ResultsTable,
    _collect_cmd,
    fixture_copy,
    job_keys,
    job_rows,
    raw_counts,
    template_rows,
)


# =========================================================================================================
# Fault 1: two collectors on one table
# =========================================================================================================
@dataclass(frozen=True)
class _Cfg:
    hash: str


@dataclass(frozen=True)
class SimJob:
    """A stand-in job with the fields the collector's claims read: config.hash, seed, attempt, label."""

    config: _Cfg
    seed: int
    attempt: int = 1

    @property
    def label(self) -> str:
        return f"config {self.config.hash[:12]} seed {self.seed}"


def sim_collector(
    table: str, keys: list[tuple[str, int]], hold_s: float, log: str, ttl_s: float = 30.0, barrier: str = ""
) -> None:
    """A collector whose trials are stand-ins: claim each job as ``collect`` does, hold it ``hold_s``
    seconds (the trial), append its rows, release. Each start is logged as ``pid hash seed``. With a
    ``barrier`` path it first writes ``<barrier>.<pid>`` and waits for ``barrier`` to exist (a common start)."""
    from collections import deque

    from qra_bench.leases import JobClaims

    steps = [r.fidelity for r in template_rows()]
    if barrier:
        Path(f"{barrier}.{os.getpid()}").touch()
        deadline = time.time() + 120
        while not Path(barrier).exists() and time.time() < deadline:
            time.sleep(0.02)
    claims = JobClaims(table, steps, template_rows()[0].max_steps, max_retries=0, ttl_s=ttl_s, poll_s=0.1)
    pending = deque(SimJob(_Cfg(h), s) for h, s in keys)
    try:
        while pending or claims.waiting:
            job = claims.next(pending)
            if job is None:
                time.sleep(0.05)
                continue
            with open(log, "a") as handle:
                handle.write(f"{os.getpid()} {job.config.hash} {job.seed}\n")
            time.sleep(hold_s)
            ResultsTable(table).append(job_rows(job.config.hash, job.seed))
            claims.release(job)
    finally:
        claims.close()


def _spawn_sim(
    table: Path, keys: list[tuple[str, int]], hold_s: float, log: Path, barrier: str = ""
) -> subprocess.Popen:
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); from faultlib.collectors import sim_collector; "
        "sim_collector(sys.argv[2], [tuple(k) for k in json.loads(sys.argv[3])], float(sys.argv[4]), "
        "sys.argv[5], barrier=sys.argv[6])"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(BENCHMARKS), str(table), json.dumps(keys), str(hold_s), str(log), barrier],
        start_new_session=True,
    )


def _starts(log: Path) -> list[tuple[int, str, int]]:
    if not log.exists():
        return []
    return [(int(p), h, int(s)) for p, h, s in (line.split() for line in log.read_text().splitlines())]


def fault_two_collectors(root: Path, quick: bool) -> Outcome:
    out = Outcome("1 two collectors on one table")
    n_jobs = 8 if quick else 24
    keys = [(uuid.uuid5(uuid.NAMESPACE_OID, f"cfg{i}").hex * 2, seed) for i in range(n_jobs // 2) for seed in (0, 1)]
    # (a) both run to the end: every job started once, stored once
    scratch = fixture_copy(root, "two")
    for h, s in keys:
        scratch.added |= job_keys(h, s)
    log = root / "two.log"
    barrier = root / "go"
    procs = [_spawn_sim(scratch.path, keys, 0.15, log, str(barrier)) for _ in range(2)]
    deadline = time.time() + 120
    while len(list(root.glob("go.*"))) < 2 and time.time() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.02)
    barrier.touch()  # both are ready: they start claiming together
    codes = [p.wait(timeout=300) for p in procs]
    starts = _starts(log)
    started = collections.Counter((h, s) for _, h, s in starts)
    out.check(codes == [0, 0], f"collectors exited {codes}")
    out.check(
        all(started[k] == 1 for k in keys) and len(started) == len(keys),
        f"jobs started {sorted(set(started.values()))} times; expected each once",
    )
    out.check(len({p for p, _, _ in starts}) == 2, "both collectors should have run jobs")
    out.check(not list((scratch.path / ".leases").glob("*.lease")), "leases left behind after both finished")
    out.check(ResultsTable(scratch.path).validate().startswith("OK"), "table does not validate")
    out.audit += scratch.audit()
    # (b) one is killed -9 mid-trial: the other takes its job over at once and finishes everything
    scratch = fixture_copy(root, "killed")
    for h, s in keys:
        scratch.added |= job_keys(h, s)
    log = root / "killed.log"
    victim = _spawn_sim(scratch.path, keys, 60.0, log)  # its first trial would take a minute
    deadline = time.time() + 60
    while not _starts(log) and time.time() < deadline:
        time.sleep(0.05)
    survivor = _spawn_sim(scratch.path, keys, 0.1, log)
    time.sleep(0.3)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    t0 = time.time()
    code = survivor.wait(timeout=300)
    starts = _starts(log)
    held_by_victim = {(h, s) for p, h, s in starts if p == victim.pid}
    by_survivor = collections.Counter((h, s) for p, h, s in starts if p == survivor.pid)
    out.check(code == 0, f"survivor exited {code}")
    out.check(
        len(held_by_victim) == 1 and all(by_survivor[k] == 1 for k in keys),
        f"victim started {len(held_by_victim)} jobs; survivor should run each job once",
    )
    out.check(time.time() - t0 < 30, "the killed collector's lease was not taken over promptly")
    out.audit += scratch.audit()
    out.notes.append(f"{len(keys)} jobs x 2 runs, stand-in trials")
    if not quick:
        _real_two_collectors(root, out)
    return out


def _real_two_collectors(root: Path, out: Outcome) -> None:
    """Two real ``qra-bench collect`` processes of the same design into one fresh table."""
    table = root / "real-two"
    cmd = _collect_cmd(table, 6)
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=1800)[0] for p in procs]
    out.check(
        all(p.returncode == 0 for p in procs),
        f"real collectors exited {[p.returncode for p in procs]}: {outputs[0][-200:]}",
    )
    counts, corrupt = raw_counts(table)
    out.check(
        len(counts) == 6 * 2 and set(counts.values()) == {1} and corrupt == 0,
        f"real collectors: {len(counts)} keys (expected 12), counts {sorted(set(counts.values()))}",
    )
    frame = ResultsTable(table).read()
    pids = {json.loads(m)["worker_pid"] for m in frame["extra_metrics"]}
    out.check(len(pids) == 2, f"expected trials from both collectors' workers, got {len(pids)} worker pids")
    out.audit.duplicates += sum(c - 1 for c in counts.values())
    out.audit.corrupt += corrupt
    out.notes.append("plus 2 real collectors x 6 trials")


# =========================================================================================================
# Fault 3: a Dask worker killed mid-trial
# =========================================================================================================
def slow_trial(table: str, config_hash: str, seed: int, hold_s: float, flag: str) -> int:
    """A stand-in trial on a dask worker: announce its pid in ``flag``, hold, append its rows; return the pid."""
    Path(flag).write_text(str(os.getpid()))
    time.sleep(hold_s)
    ResultsTable(table).append(job_rows(config_hash, seed))
    return os.getpid()


def fault_dask_worker_killed(root: Path, quick: bool) -> Outcome:
    out = Outcome("3 dask worker killed mid-trial")
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        out.check(False, "distributed is not installed")
        return out
    scratch = fixture_copy(root, "dask")
    n_trials = 1 if quick else 3
    keys = [(uuid.uuid4().hex * 2, 0) for _ in range(n_trials)]
    for h, s in keys:
        scratch.added |= job_keys(h, s)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(lambda: sys.path.insert(0, str(BENCHMARKS)))  # slow_trial is pickled by reference

        for i, (h, s) in enumerate(keys):
            flag = root / f"dask-{i}.pid"
            future = client.submit(slow_trial, str(scratch.path), h, s, 2.0, str(flag), pure=False)
            deadline = time.time() + 60
            while not flag.exists() and time.time() < deadline:
                time.sleep(0.05)
            victim = int(flag.read_text())
            os.kill(victim, signal.SIGKILL)  # mid-trial: the rows are not written yet
            pid = future.result(timeout=120)
            out.check(pid != victim, f"trial {i}: result from the killed worker")
    counts, _ = raw_counts(scratch.path)
    out.check(all(counts[k] == 1 for h, s in keys for k in job_keys(h, s)), "a killed trial was lost or stored twice")
    out.audit += scratch.audit()
    out.notes.append(f"{n_trials} trial{'s' if n_trials > 1 else ''}, each one's worker killed, stand-in trials")
    if not quick:
        _real_dask_collect(root, out)
    return out


def _real_dask_collect(root: Path, out: Outcome) -> None:
    """``qra-bench collect --executor dask``: kill a dask worker process while it runs a real trial."""
    import psutil

    table = root / "real-dask"
    proc = subprocess.Popen(
        _collect_cmd(table, 4, 2, "--executor", "dask"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    killed = 0
    deadline = time.time() + 900
    while proc.poll() is None and time.time() < deadline and not killed:
        time.sleep(0.5)
        workers = [
            p
            for p in psutil.Process(proc.pid).children(recursive=True)
            if "spawn_main" in " ".join(p.cmdline()) and p.cpu_percent(0.2) > 30
        ]
        if workers and list(table.glob(PART_GLOB)):  # one trial done, the next busy: kill a busy worker
            workers[0].kill()
            killed += 1
    output = proc.communicate(timeout=1800)[0]
    counts, corrupt = raw_counts(table)
    out.check(
        proc.returncode == 0 and killed == 1, f"dask collect: rc {proc.returncode}, killed {killed}: {output[-300:]}"
    )
    out.check(
        len(counts) == 4 * 2 and set(counts.values()) == {1} and corrupt == 0,
        f"dask collect: {len(counts)} keys (expected 8), counts {sorted(set(counts.values()))}",
    )
    out.audit.duplicates += sum(c - 1 for c in counts.values())
    out.audit.corrupt += corrupt
    out.notes.append("plus a real dask collect with a worker killed")
