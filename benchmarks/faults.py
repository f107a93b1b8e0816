"""Fault injection: what qra-bench does when the world misbehaves while it writes and reads shared data.

Every fault runs against a scratch copy of the real fixture table ``tests/fixtures/tiny-news-small`` (or a
fresh table where a collector needs its own recipe) and is checked, not just provoked:

1. two collectors on one table at once: leases per (configuration, seed); no trial lost, stored twice, or
   started by the second after the first started it; a collector killed -9 frees its jobs at once;
2. disk full (a size-limited tmpfs, else a simulated ENOSPC), a read-only file system, permission denied:
   one-line :class:`TableWriteError`, no partial part visible, existing parts byte-identical, the collector
   stops with status 2;
3. a Dask worker killed mid-trial: the trial runs again on another worker and is recorded once;
4. damaged artifacts: truncated or edited surrogate files, a manifest that disagrees with its files, a part
   whose bytes changed after ``TABLE.md``, a card that disagrees with the table: each refused on load with
   one line naming the file;
5. hostile input through the Python API: the property-based tests of ``tests/test_properties.py``;
6. reversed or empty ranges on the command line: one line, exit status 2, nothing written.

Prints one line per fault (PASS/FAIL, cases tried, seconds), the count, and the audit of every scratch
table (rows lost, duplicated keys, unreadable parts), e.g. "0 rows lost, 0 duplicates, 0 corrupt parts".

Usage: ``python benchmarks/faults.py [--quick] [--only 1,4] [--keep DIR]``. ``--quick`` (about a minute)
uses cheap stand-in trials (real rows of the fixture, appended by the real table and lease code) instead of
real fine-tunes; the full run adds real ``qra-bench collect`` processes (tiny model, 2 steps).
Needs root for the tmpfs cases; without it they fall back to simulated errors (said in the output).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from qra_bench.errors import QRBenchError  # noqa: E402
from qra_bench.table import PART_GLOB, ResultsTable, TrialRow, _read_part  # noqa: E402

FIXTURE = REPO / "tests" / "fixtures" / "tiny-news-small"
QRA = [sys.executable, "-m", "qra_bench.cli"]


# =========================================================================================================
# Scratch tables and their audit
# =========================================================================================================
Key = tuple[str, int, int]


@dataclass
class Audit:
    """Rows lost, keys stored more than expected, and unreadable parts of one scratch table."""

    lost: int = 0
    duplicates: int = 0
    corrupt: int = 0

    def __iadd__(self, other: "Audit") -> "Audit":
        self.lost += other.lost
        self.duplicates += other.duplicates
        self.corrupt += other.corrupt
        return self


def raw_counts(table: Path) -> tuple[collections.Counter, int]:
    """(count of every (hash, seed, fidelity) over all parts before dedupe, number of unreadable parts)."""
    counts: collections.Counter = collections.Counter()
    corrupt = 0
    for part in sorted(table.glob(PART_GLOB)):
        try:
            t = _read_part(part)
        except QRBenchError:
            corrupt += 1
            continue
        counts.update(zip(t.column("config_hash").to_pylist(), t.column("seed").to_pylist(),
                          t.column("fidelity").to_pylist()))
    return counts, corrupt


@dataclass
class Scratch:
    """A scratch table: its path, what it held at the start, and the keys the fault is expected to add."""

    path: Path
    before: collections.Counter = field(default_factory=collections.Counter)
    added: set = field(default_factory=set)

    def audit(self) -> Audit:
        now, corrupt = raw_counts(self.path) if self.path.is_dir() else (collections.Counter(), 0)
        expected = set(self.before) | self.added
        lost = sum(1 for k in expected if now[k] == 0)
        dups = sum(max(0, now[k] - self.before[k] - (k in self.added)) for k in now)
        return Audit(lost, dups, corrupt)


def fixture_copy(root: Path, name: str = "table") -> Scratch:
    """A copy of the fixture's part files (and nothing else) under ``root/name``."""
    dest = root / name
    dest.mkdir(parents=True)
    for part in sorted(FIXTURE.glob(PART_GLOB)):
        shutil.copy2(part, dest / part.name)
    return Scratch(dest, raw_counts(dest)[0])


def part_bytes(table: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(table.glob(PART_GLOB))}


_TEMPLATE: list[TrialRow] = []


def template_rows() -> list[TrialRow]:
    """The rows (one per checkpoint) of the fixture's first ok trial: real values to re-key for stand-in jobs."""
    if not _TEMPLATE:
        frame = ResultsTable(FIXTURE).read()
        first = frame.iloc[0]
        trial = frame[(frame["config_hash"] == first["config_hash"]) & (frame["seed"] == first["seed"])]
        _TEMPLATE.extend(TrialRow.from_dict(r) for r in trial.sort_values("fidelity").to_dict("records"))
    return list(_TEMPLATE)


def job_rows(config_hash: str, seed: int) -> list[TrialRow]:
    """A stand-in trial's rows: the template's checkpoints under a new key and run id."""
    run = uuid.uuid4().hex
    return [replace(r, config_hash=config_hash, seed=seed, run_id=run) for r in template_rows()]


def job_keys(config_hash: str, seed: int) -> set[Key]:
    return {(config_hash, seed, r.fidelity) for r in template_rows()}


def run_cli(args: list[str], in_process: bool) -> tuple[int, str]:
    """``qra-bench ARGS``: (exit status, stderr), in this process (fast) or in a subprocess."""
    if not in_process:
        proc = subprocess.run([*QRA, *args], capture_output=True, text=True, timeout=1800)
        return proc.returncode, proc.stderr
    import io

    from qra_bench.cli import main as cli_main

    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            cli_main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # a traceback is what the check is there to catch
            traceback.print_exc(file=err)
            code = 1
    return code, err.getvalue()


def one_line(message: str) -> bool:
    return bool(message) and "\n" not in message.strip()


def _fill(path: Path) -> None:
    """Write zeros to ``path`` until the file system is full (unbuffered, so the error comes here)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(descriptor, b"\0" * 4096)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def tmpfs(size: str) -> Iterator[Optional[Path]]:
    """A fresh tmpfs of ``size`` (e.g. ``"256k"``), unmounted afterwards; None where mounting is not allowed."""
    point = Path(tempfile.mkdtemp(prefix="qra-tmpfs-"))
    mounted = False
    try:
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                                     capture_output=True).returncode == 0
        yield point if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(point)], capture_output=True)
        shutil.rmtree(point, ignore_errors=True)


# =========================================================================================================
# Results
# =========================================================================================================
@dataclass
class Outcome:
    """One fault: checks passed, cases tried, notes, and the audit of its scratch tables."""

    name: str
    cases: int = 0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    audit: Audit = field(default_factory=Audit)
    seconds: float = 0.0

    def check(self, ok: bool, what: str) -> bool:
        self.cases += 1
        if not ok:
            self.failures.append(what)
        return ok

    @property
    def passed(self) -> bool:
        return not self.failures and self.audit == Audit()

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        text = f"{verdict}  {self.name}: {self.cases} cases, {self.seconds:.1f} s"
        if self.notes:
            text += f" ({'; '.join(self.notes)})"
        if self.failures:
            text += " -- failed: " + " | ".join(self.failures[:5])
        return text


def expect_error(out: Outcome, what: str, call: Callable[[], object], *names: str,
                 kind: type = QRBenchError) -> Optional[str]:
    """Check that ``call`` raises ``kind`` with a one-line message naming each of ``names``; return it."""
    try:
        call()
    except kind as exc:
        message = str(exc)
        missing = [n for n in names if n not in message]
        out.check(one_line(message) and not missing, f"{what}: message {message[:160]!r} lacks {missing}")
        return message
    except Exception as exc:  # any other type is a bare traceback for the user
        out.check(False, f"{what}: raised {type(exc).__name__}: {str(exc)[:120]}, not {kind.__name__}")
        return None
    out.check(False, f"{what}: accepted silently")
    return None


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


def sim_collector(table: str, keys: list[tuple[str, int]], hold_s: float, log: str, ttl_s: float = 30.0,
                  barrier: str = "") -> None:
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


def _spawn_sim(table: Path, keys: list[tuple[str, int]], hold_s: float, log: Path, barrier: str = "") -> subprocess.Popen:
    code = ("import sys, json; sys.path.insert(0, sys.argv[1]); import faults; "
            "faults.sim_collector(sys.argv[2], [tuple(k) for k in json.loads(sys.argv[3])], float(sys.argv[4]), "
            "sys.argv[5], barrier=sys.argv[6])")
    import json

    return subprocess.Popen([sys.executable, "-c", code, str(Path(__file__).parent), str(table), json.dumps(keys),
                             str(hold_s), str(log), barrier], start_new_session=True)


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
    out.check(all(started[k] == 1 for k in keys) and len(started) == len(keys),
              f"jobs started {sorted(set(started.values()))} times; expected each once")
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
    out.check(len(held_by_victim) == 1 and all(by_survivor[k] == 1 for k in keys),
              f"victim started {len(held_by_victim)} jobs; survivor should run each job once")
    out.check(time.time() - t0 < 30, "the killed collector's lease was not taken over promptly")
    out.audit += scratch.audit()
    out.notes.append(f"{len(keys)} jobs x 2 runs, stand-in trials")
    if not quick:
        _real_two_collectors(root, out)
    return out


_MODEL: list[str] = []


def real_model() -> str:
    """The model of the real-trial cases: a 2-block LLaMA with the tiny model's tokenizer, built once per run
    (``benchmarks/kill_resume.py``'s), so a real fine-tune takes seconds; ``tiny`` where that cannot be built."""
    if not _MODEL:
        import atexit

        folder = Path(tempfile.mkdtemp(prefix="qra-faults-model-"))
        atexit.register(shutil.rmtree, folder, True)
        try:
            sys.path.insert(0, str(Path(__file__).parent))
            from kill_resume import small_model

            _MODEL.append(small_model(folder / "small"))
        except Exception:  # no tokenizer of the tiny checkpoint: the embedded model itself
            _MODEL.append("tiny")
    return _MODEL[0]


def _collect_cmd(out_dir: Path, n: int, workers: int = 1, *extra: str, model: Optional[str] = None) -> list[str]:
    """A small real collection: ``n`` random configurations of ``model`` (:func:`real_model`), seed 0, 2 steps."""
    return [*QRA, "collect", "--model", model or real_model(), "--design", "random", "--n", str(n), "--no-anchors", "--seeds", "0",
            "--steps", "2", "--fidelities", "0.5,1.0", "--workers", str(workers), "--threads", "1",
            "--max-retries", "1", "--out", str(out_dir), "--no-progress", *extra]


def _real_two_collectors(root: Path, out: Outcome) -> None:
    """Two real ``qra-bench collect`` processes of the same design into one fresh table."""
    table = root / "real-two"
    cmd = _collect_cmd(table, 6)
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=1800)[0] for p in procs]
    out.check(all(p.returncode == 0 for p in procs), f"real collectors exited {[p.returncode for p in procs]}: "
              f"{outputs[0][-200:]}")
    counts, corrupt = raw_counts(table)
    out.check(len(counts) == 6 * 2 and set(counts.values()) == {1} and corrupt == 0,
              f"real collectors: {len(counts)} keys (expected 12), counts {sorted(set(counts.values()))}")
    frame = ResultsTable(table).read()
    pids = {__import__("json").loads(m)["worker_pid"] for m in frame["extra_metrics"]}
    out.check(len(pids) == 2, f"expected trials from both collectors' workers, got {len(pids)} worker pids")
    out.audit.duplicates += sum(c - 1 for c in counts.values())
    out.audit.corrupt += corrupt
    out.notes.append("plus 2 real collectors x 6 trials")


# =========================================================================================================
# Fault 2: disk full, read-only, permission denied
# =========================================================================================================
def _append_fails(out: Outcome, what: str, scratch: Scratch, reason: str) -> None:
    """One append to ``scratch`` must fail with a one-line TableWriteError naming ``reason``, adding nothing."""
    from qra_bench.table import TableWriteError

    before = part_bytes(scratch.path)
    rows = job_rows("f" * 64, 7)
    expect_error(out, what, lambda: ResultsTable(scratch.path).append(rows), str(scratch.path), reason,
                 kind=TableWriteError)
    out.check(part_bytes(scratch.path) == before, f"{what}: parts changed or a part appeared")
    out.check(ResultsTable(scratch.path).validate().startswith("OK"), f"{what}: table does not validate")
    out.audit += scratch.audit()


def fault_write_errors(root: Path, quick: bool) -> Outcome:
    out = Outcome("2 disk full / read-only / permission denied")
    with tmpfs("2m") as mount:
        if mount is None:
            out.notes.append("no tmpfs (not root): ENOSPC and EROFS simulated")
            _simulated_write_errors(root, out)
        else:
            scratch = fixture_copy(mount, "full")
            filler = mount / "filler"  # fill the disk, leave less than one part's worth free
            _fill(filler)
            os.truncate(filler, max(0, filler.stat().st_size - 4096))  # one page: a lease fits, a part does not
            _append_fails(out, "disk full (tmpfs)", scratch, "ENOSPC")
            out.check(not [p for p in scratch.path.iterdir() if p.name.endswith(".tmp")], "a temporary file was left")
            _collector_on_full_disk(mount, scratch, out, quick)
            os.unlink(filler)
            subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
            _append_fails(out, "read-only file system", scratch, "EROFS")
            subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=True)
            out.notes.append("2 MiB tmpfs")
    _simulated_enospc(root, out)
    _permission_denied(root, out)
    return out


def _simulated_enospc(root: Path, out: Outcome) -> None:
    """ENOSPC raised by fsync after pyarrow wrote the bytes: the temporary file is removed, nothing appears."""
    import qra_bench.table as table_module

    scratch = fixture_copy(root, "enospc")
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    table_module.os.fsync = full
    try:
        _append_fails(out, "disk full (simulated at fsync)", scratch, "ENOSPC")
    finally:
        table_module.os.fsync = real_fsync
    out.check(not [p for p in scratch.path.iterdir() if p.name.startswith(".")], "temporary file left after ENOSPC")


def _simulated_write_errors(root: Path, out: Outcome) -> None:
    import builtins

    scratch = fixture_copy(root, "erofs")
    real_open = builtins.open

    def read_only(file, mode="r", *args, **kwargs):
        if "x" in mode or "w" in mode:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
        return real_open(file, mode, *args, **kwargs)

    builtins.open = read_only
    try:
        _append_fails(out, "read-only file system (simulated)", scratch, "EROFS")
    finally:
        builtins.open = real_open


def _permission_denied(root: Path, out: Outcome) -> None:
    """An append to a table directory without write permission (mode 555). Root ignores modes, so as root
    the append runs in a subprocess without the capabilities that override them (``setpriv``)."""
    scratch = fixture_copy(root, "denied")
    before = part_bytes(scratch.path)
    os.chmod(scratch.path, 0o555)
    try:
        if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("setpriv"):
            code = ("import sys; sys.path.insert(0, sys.argv[1]); import faults\n"
                    "from qra_bench.table import ResultsTable, TableWriteError\n"
                    "try:\n ResultsTable(sys.argv[2]).append(faults.job_rows('e' * 64, 3))\n"
                    "except TableWriteError as exc:\n print(exc); sys.exit(3)\n")
            proc = subprocess.run(["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search,-fowner",
                                   "--", sys.executable, "-c", code, str(Path(__file__).parent), str(scratch.path)],
                                  capture_output=True, text=True, timeout=120)
            message = proc.stdout.strip()
            out.check(proc.returncode == 3 and one_line(message) and "EACCES" in message and not proc.stderr.strip(),
                      f"permission denied: rc {proc.returncode}, {message[:120]!r} {proc.stderr[-200:]!r}")
        elif hasattr(os, "geteuid") and os.geteuid() == 0:
            out.notes.append("permission case skipped: root without setpriv")
        else:
            _append_fails(out, "permission denied", scratch, "EACCES")
    finally:
        os.chmod(scratch.path, 0o755)
    out.check(part_bytes(scratch.path) == before, "permission denied: parts changed")
    out.audit += scratch.audit()


def _collector_on_full_disk(mount: Path, scratch: Scratch, out: Outcome, quick: bool) -> None:
    """``qra-bench collect`` into a table on a full disk stops with one line and status 2, adding nothing.

    Quick: the table is full even for a lease. Full run: room for leases but not for a part, so the first
    real trial's write fails (in the worker, then in the driver recording the crash)."""
    table = mount / "collect"
    table.mkdir()
    if quick:  # no room even for a lease: the collector stops before its first trial
        _fill(mount / "filler-2")
    before = part_bytes(table)
    cmd = _collect_cmd(table, 1, model="tiny" if quick else None)  # quick: fails before any model is loaded
    code, stderr = run_cli(cmd[len(QRA):], in_process=quick)
    # Library warnings and progress bars of a worker that loaded a model may precede it: the error is the
    # last line, the only one of its kind, and there is no traceback.
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("qra-bench: error:")]
    out.check(code == 2 and len(errors) == 1 and lines[-1] == errors[0] and "ENOSPC" in errors[0]
              and "Traceback" not in stderr, f"collector on a full disk: rc {code}, {stderr[-300:]!r}")
    out.check(part_bytes(table) == before and not list(table.glob("part-*")), "collector on a full disk wrote a part")
    out.check(not list((table / ".leases").glob("*.lease")) if (table / ".leases").exists() else True,
              "collector on a full disk left a lease")
    out.notes.append("collector stops with status 2")


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
    sys.path.insert(0, str(Path(__file__).parent))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=50) as cluster, Client(cluster) as client:
        client.run(lambda: sys.path.insert(0, str(Path(__file__).parent)))
        import faults as module  # picklable by reference on the workers

        for i, (h, s) in enumerate(keys):
            flag = root / f"dask-{i}.pid"
            future = client.submit(module.slow_trial, str(scratch.path), h, s, 2.0, str(flag), pure=False)
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
    proc = subprocess.Popen(_collect_cmd(table, 4, 2, "--executor", "dask"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    killed = 0
    deadline = time.time() + 900
    while proc.poll() is None and time.time() < deadline and not killed:
        time.sleep(0.5)
        workers = [p for p in psutil.Process(proc.pid).children(recursive=True)
                   if "spawn_main" in " ".join(p.cmdline()) and p.cpu_percent(0.2) > 30]
        if workers and list(table.glob(PART_GLOB)):  # one trial done, the next busy: kill a busy worker
            workers[0].kill()
            killed += 1
    output = proc.communicate(timeout=1800)[0]
    counts, corrupt = raw_counts(table)
    out.check(proc.returncode == 0 and killed == 1, f"dask collect: rc {proc.returncode}, killed {killed}: {output[-300:]}")
    out.check(len(counts) == 4 * 2 and set(counts.values()) == {1} and corrupt == 0,
              f"dask collect: {len(counts)} keys (expected 8), counts {sorted(set(counts.values()))}")
    out.audit.duplicates += sum(c - 1 for c in counts.values())
    out.audit.corrupt += corrupt
    out.notes.append("plus a real dask collect with a worker killed")


# =========================================================================================================
# Fault 4: damaged artifacts
# =========================================================================================================
def fault_damaged_artifacts(root: Path, quick: bool) -> Outcome:
    import json

    from qra_bench.surrogate.artifact import SurrogateArtifact
    from qra_bench.table_report import verify_card, write_card

    out = Outcome("4 damaged artifacts")
    scratch = fixture_copy(root, "card")
    shipped = REPO / "surrogates" / "tiny-news" / "xgb"

    def copy() -> Path:
        dest = root / f"surrogate-{uuid.uuid4().hex[:8]}"
        shutil.copytree(shipped, dest)
        return dest

    def load(path: Path) -> Callable[[], object]:
        return lambda: SurrogateArtifact.load(path, table_path=scratch.path, allow_hash_mismatch=True)

    intact = load(copy())()
    out.check(intact.target == "eval_loss", "the intact surrogate copy does not load")
    s = copy()
    (s / "model.pkl").write_bytes((s / "model.pkl").read_bytes()[: 1000])
    expect_error(out, "truncated model.pkl", load(s), "model.pkl")
    s = copy()
    data = bytearray((s / "model.pkl").read_bytes())
    data[len(data) // 2] ^= 0x01
    (s / "model.pkl").write_bytes(bytes(data))
    expect_error(out, "one bit of model.pkl flipped", load(s), "model.pkl")
    s = copy()
    manifest = json.loads((s / "manifest.json").read_text())
    manifest["training"]["n_rows"] += 1
    (s / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    expect_error(out, "edited manifest metric", load(s), "manifest.json")
    s = copy()
    (s / "manifest.json").write_text((s / "manifest.json").read_text()[:500])
    expect_error(out, "truncated manifest", load(s), "manifest.json")
    s = copy()  # a replaced model with a manifest edited to match it
    (s / "model.pkl").write_bytes(b"not the model")
    manifest = json.loads((s / "manifest.json").read_text())
    manifest["model_file"]["sha256"] = __import__("hashlib").sha256(b"not the model").hexdigest()
    (s / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    expect_error(out, "model and manifest replaced together", load(s), "manifest.json")
    s = copy()
    (s / "predictions.csv").write_text((s / "predictions.csv").read_text().replace("1", "2", 1))
    expect_error(out, "edited predictions.csv", load(s), "predictions.csv")
    s = copy()
    (s / "SHA256SUMS").unlink()
    expect_error(out, "missing SHA256SUMS", load(s), "SHA256SUMS")
    s = copy()
    (s / "SHA256SUMS").write_text("garbage\n")
    expect_error(out, "garbled SHA256SUMS", load(s), "SHA256SUMS")
    s = copy()
    expect_error(out, "surrogate bound to another table",
                 lambda: SurrogateArtifact.load(s, table_path=scratch.path), str(scratch.path))

    # the card: written once, then each damage on a fresh copy of the table
    write_card(scratch.path, recipe="fault injection")
    out.check(verify_card(scratch.path).startswith("TABLE.md matches"), "the intact card does not verify")

    def table_copy() -> Path:
        dest = root / f"card-{uuid.uuid4().hex[:8]}"
        shutil.copytree(scratch.path, dest)
        return dest

    t = table_copy()
    part = sorted(t.glob(PART_GLOB))[3]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0x01
    part.write_bytes(bytes(data))
    expect_error(out, "a part's bytes changed after the card", lambda: verify_card(t), part.name)
    t = table_copy()
    part = sorted(t.glob(PART_GLOB))[5]
    import pyarrow.parquet as pq

    pq.write_table(pq.read_table(part), part, compression="gzip")  # same rows, other bytes
    out.check(ResultsTable(t).content_hash() == ResultsTable(scratch.path).content_hash(), "re-encoding changed rows")
    expect_error(out, "a part re-encoded with the same rows", lambda: verify_card(t), part.name)
    t = table_copy()
    part = sorted(t.glob(PART_GLOB))[0]
    part.unlink()
    expect_error(out, "a part deleted after the card", lambda: verify_card(t), part.name)
    t = table_copy()
    card = (t / "TABLE.md").read_text()
    digest = card.split("content hash: `")[1][:64]
    (t / "TABLE.md").write_text(card.replace(digest, "0" * 64))
    expect_error(out, "a card whose hash disagrees", lambda: verify_card(t), "TABLE.md")
    t = table_copy()
    (t / "PARTS.sha256").write_text((t / "PARTS.sha256").read_text().replace("a", "b", 1))
    expect_error(out, "an edited parts list", lambda: verify_card(t), "PARTS.sha256")
    t = table_copy()
    ResultsTable(t).append(job_rows("d" * 64, 1))
    expect_error(out, "a part added after the card", lambda: verify_card(t), "TABLE.md")
    t = table_copy()
    with open(sorted(t.glob(PART_GLOB))[1], "r+b") as handle:
        handle.truncate(100)
    expect_error(out, "a truncated part (read without a card)", lambda: ResultsTable(t).read(),
                 sorted(t.glob(PART_GLOB))[1].name)
    out.audit += scratch.audit()
    return out


# =========================================================================================================
# Faults 5 and 6: hostile input
# =========================================================================================================
def fault_hostile_api(root: Path, quick: bool) -> Outcome:
    """Run every property of ``tests/test_properties.py`` (hypothesis) and count its examples."""
    import importlib.util

    out = Outcome("5 hostile input through the Python API")
    spec = importlib.util.spec_from_file_location("qra_properties", REPO / "tests" / "test_properties.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    properties = [(name, fn) for name, fn in vars(module).items() if name.startswith("test_") and hasattr(fn, "hypothesis")]
    for name, fn in properties:
        try:
            fn()
            out.check(True, name)
        except Exception as exc:
            out.check(False, f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:150] if str(exc) else ''}")
    examples = sum(module.EXAMPLES.values())
    out.notes.append(f"{len(properties)} properties, {examples} examples, fewest {min(module.EXAMPLES.values(), default=0)}")
    out.check(min(module.EXAMPLES.values(), default=0) >= 200, "a property ran fewer than 200 examples")
    return out


def fault_ranges(root: Path, quick: bool) -> Outcome:
    """Reversed or empty ranges on the command line: one line on stderr, exit status 2, nothing written."""
    out = Outcome("6 reversed or empty ranges")
    target = root / "ranges-out"
    cases = [
        (["collect", "--seeds", "3-1", "--out", str(target)], "seeds range '3-1' is empty"),
        (["collect", "--seeds", ",", "--out", str(target)], "cannot parse seeds"),
        (["collect", "--n", "0", "--out", str(target)], "n must be >= 1"),
        (["bench", "--max-evals", "0", "--out", str(target)], "max evals must be >= 1"),
    ]
    if not quick:
        cases.append((["sweep", "--budgets", "5:1:3", "--surrogate", str(REPO / "surrogates/tiny-news/xgb"),
                       "--table", str(REPO / "tests/fixtures/tiny-news-small"), "--allow-hash-mismatch",
                       "--out", str(target)],
                      "must be below HI"))
    for args, message in cases:
        code, stderr = run_cli(args, in_process=quick)
        lines = [line for line in stderr.splitlines() if line.strip()]
        out.check(code == 2 and len(lines) == 1 and message in lines[0] and not target.exists(),
                  f"{' '.join(args[:3])}: rc {code}, {stderr[-200:]!r}")
    from qra_bench.arch import load_arch
    from qra_bench.memory import MemoryModel, MemorySettings
    from qra_bench.space import SearchSpace
    from qra_bench.sweep import parse_budgets

    arch = load_arch("tiny")
    model = MemoryModel(arch, MemorySettings(), SearchSpace(arch.n_blocks))
    for text in ("5:1:3", "0.9xfp16-lora:0.3xfp16-lora:4", "uniform-4bit:uniform-4bit:3", "1:2:0", ","):
        expect_error(out, f"parse_budgets({text!r})", lambda: parse_budgets(text, model), repr(text))
    return out


FAULTS: dict[int, Callable[[Path, bool], Outcome]] = {
    1: fault_two_collectors, 2: fault_write_errors, 3: fault_dask_worker_killed, 4: fault_damaged_artifacts,
    5: fault_hostile_api, 6: fault_ranges,
}


def run(only: list[int], quick: bool, keep: Optional[Path] = None) -> tuple[list[Outcome], Audit]:
    """Run the faults ``only`` (numbers) in scratch folders; return their outcomes and the summed audit."""
    outcomes, total = [], Audit()
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="qra-faults-"))
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # the permission case runs a reader as another user
    try:
        for number in only:
            folder = root / f"fault{number}"
            folder.mkdir()
            t0 = time.perf_counter()
            try:
                outcome = FAULTS[number](folder, quick)
            except Exception as exc:
                outcome = Outcome(f"{number} {FAULTS[number].__name__}")
                outcome.check(False, f"crashed: {type(exc).__name__}: {exc} {traceback.format_exc(limit=2)[-300:]}")
            outcome.seconds = time.perf_counter() - t0
            total += outcome.audit
            outcomes.append(outcome)
            print(outcome.line(), flush=True)
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return outcomes, total


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="stand-in trials only (about a minute)")
    ap.add_argument("--only", default=",".join(map(str, FAULTS)), help="comma list of fault numbers")
    ap.add_argument("--keep", default=None, help="keep the scratch folders here")
    args = ap.parse_args(argv)
    only = [int(x) for x in args.only.split(",") if x.strip()]
    t0 = time.perf_counter()
    outcomes, total = run(only, args.quick, Path(args.keep) if args.keep else None)
    passed = sum(o.passed for o in outcomes)
    cases = sum(o.cases for o in outcomes)
    print(f"{passed}/{len(outcomes)} faults passed, {cases} cases, {time.perf_counter() - t0:.1f} s"
          f"{' (quick)' if args.quick else ''}")
    print(f"{total.lost} rows lost, {total.duplicates} duplicates, {total.corrupt} corrupt parts")
    return 0 if passed == len(outcomes) and total == Audit() else 1


if __name__ == "__main__":
    sys.exit(main())
