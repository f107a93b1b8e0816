"""Leases: which collector runs which job when several collectors append to one table.

A lease is a small JSON file ``<table>/.leases/<key>.lease`` naming its holder (a random token, pid, host,
the pid's start time) and when it was taken. It appears atomically with its whole content (written to a
temporary file, then hard-linked to its name, which fails when the name exists), so exactly one collector
holds a key. The holder renews it (the file's mtime is the heartbeat) every ``heartbeat_s`` seconds from a
background thread and deletes it when the job is over. A lease is *stale*, and another collector may take
it over, when its heartbeat is older than ``ttl_s`` seconds or when its holder ran on this host and that
process is gone (a ``kill -9`` of a collector frees its jobs at once for a collector on the same host).
A takeover moves the stale file aside under a unique name and checks that what it moved is the lease it
judged stale, so two collectors taking over the same key at once cannot both win.

The ``.leases`` folder is hidden: tables list only ``part-*.parquet`` files, so readers and the content
hash never see leases. :class:`JobClaims` puts leases to work for the collector's scheduler: before a job
(configuration, seed) is handed to a worker it is claimed; a job held by a live collector is deferred, one
another collector finished meanwhile is skipped, one whose attempts others used up is reported.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from qra_bench.errors import TableError

__all__ = ["LEASE_DIR", "JobClaims", "LeaseInfo", "LeaseManager", "TableWatch", "job_key"]

#: The hidden subfolder of a table directory that holds the lease files.
LEASE_DIR = ".leases"
LEASE_SUFFIX = ".lease"
_SAFE_KEY = re.compile(r"[A-Za-z0-9_.=-]{1,200}")

log = logging.getLogger(__name__)


class LeaseError(TableError):
    """A lease file could not be written (read-only or full file system, permissions)."""


@dataclass(frozen=True)
class LeaseInfo:
    """What a lease file says: holder token, pid, host, pid start time (epoch seconds), taken at (epoch s)."""

    key: str
    token: str
    pid: int
    host: str
    pid_started: float
    taken_at: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def _process_start(pid: int) -> float:
    """Start time of process ``pid`` (epoch seconds), or -1.0 when it is gone or a zombie."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return -1.0
        return float(process.create_time())
    except psutil.NoSuchProcess:
        return -1.0
    except psutil.AccessDenied:  # it exists; we may not look at it
        return 0.0


def _holder_alive(info: LeaseInfo) -> bool:
    """False only when the holder ran on this host and that process (same pid, same start) is gone."""
    if info.host != socket.gethostname():
        return True  # cannot tell from here: the heartbeat decides
    started = _process_start(info.pid)
    if started < 0:
        return False
    return started == 0.0 or abs(started - info.pid_started) < 1.0  # else the pid was reused


def _one_line(exc: BaseException) -> str:
    """One line for the user; an OSError as its text and errno name, e.g. ``No space left on device (ENOSPC)``."""
    if isinstance(exc, OSError) and exc.errno:
        import errno

        return f"{exc.strerror or exc} ({errno.errorcode.get(exc.errno, 'error')})"
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


class LeaseManager:
    """Leases held by this process in the folder ``directory``.

    Parameters
    ----------
    directory
        The lease folder (``<table>/.leases``); created on first use.
    ttl_s
        A lease whose heartbeat is older than this (seconds) is stale.
    heartbeat_s
        Seconds between renewals by the background thread (default ``ttl_s / 4``).
    """

    def __init__(
        self, directory: Union[str, os.PathLike], ttl_s: float = 120.0, heartbeat_s: Optional[float] = None
    ) -> None:
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s}")
        self.directory = Path(directory)
        self.ttl_s = float(ttl_s)
        self.heartbeat_s = float(heartbeat_s if heartbeat_s is not None else ttl_s / 4)
        self.token = uuid.uuid4().hex
        self.held: set[str] = set()
        self.lost: set[str] = set()
        self.taken_over = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._pid_started = _process_start(os.getpid())

    # -- files -----------------------------------------------------------------------------------------
    def path(self, key: str) -> Path:
        if not _SAFE_KEY.fullmatch(key):
            raise ValueError(f"lease key {key!r} must match {_SAFE_KEY.pattern}")
        return self.directory / f"{key}{LEASE_SUFFIX}"

    def read(self, key: str) -> tuple[Optional[LeaseInfo], float]:
        """(what the lease file says or None when unreadable, its mtime); (None, -1) when there is none."""
        return self._read_path(self.path(key), key)

    @staticmethod
    def _read_path(path: Path, key: str) -> tuple[Optional[LeaseInfo], float]:
        try:
            mtime = path.stat().st_mtime
            data = json.loads(path.read_text())
            return LeaseInfo(**{f: data[f] for f in LeaseInfo.__dataclass_fields__}), mtime
        except FileNotFoundError:
            return None, -1.0
        except (OSError, ValueError, TypeError, KeyError):
            try:
                return None, path.stat().st_mtime  # garbage: stale once its mtime is old
            except OSError:
                return None, -1.0

    def _create(self, path: Path, info: LeaseInfo) -> bool:
        """Make ``path`` hold ``info`` unless it exists; True when this call created it."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = self.directory / f".tmp-{self.token}-{uuid.uuid4().hex}"
            with open(temporary, "x") as handle:
                handle.write(info.to_json())
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise LeaseError(f"cannot write a lease in {self.directory}: {_one_line(exc)}") from None
        try:
            os.link(temporary, path)
            return True
        except FileExistsError:
            return False
        except OSError as exc:  # a file system without hard links: exclusive create (content follows at once)
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            except OSError:
                raise LeaseError(f"cannot create lease {path}: {_one_line(exc)}") from None
            with os.fdopen(descriptor, "w") as handle:
                handle.write(info.to_json())
            return True
        finally:
            temporary.unlink(missing_ok=True)

    def is_stale(self, info: Optional[LeaseInfo], mtime: float, now: Optional[float] = None) -> bool:
        """Whether a lease (as read) may be taken over: heartbeat older than ``ttl_s`` or holder gone."""
        now = time.time() if now is None else now
        if now - mtime > self.ttl_s:
            return True
        return info is not None and not _holder_alive(info)

    # -- acquire, renew, release -----------------------------------------------------------------------
    def try_acquire(self, key: str) -> bool:
        """Take the lease on ``key``; True when this process holds it afterwards (also when it already did)."""
        path = self.path(key)
        with self._lock:
            if key in self.held:
                return True
            info = LeaseInfo(key, self.token, os.getpid(), socket.gethostname(), self._pid_started, time.time())
            for _ in range(4):
                if self._create(path, info):
                    self.held.add(key)
                    return True
                current, mtime = self._read_path(path, key)
                if mtime < 0:
                    continue  # released meanwhile: try again
                if current is not None and current.token == self.token:
                    self.held.add(key)
                    return True
                if not self.is_stale(current, mtime):
                    return False
                if not self._move_aside(path, key, current):
                    return False
                self.taken_over += 1
                log.info(
                    "took over the stale lease %s (holder %s)",
                    key,
                    f"pid {current.pid} on {current.host}" if current else "unreadable",
                )
            return False

    def _move_aside(self, path: Path, key: str, judged: Optional[LeaseInfo]) -> bool:
        """Remove the stale lease at ``path``; False when it turned out to be another's fresh lease."""
        aside = self.directory / f".stale-{self.token}-{uuid.uuid4().hex}"
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return True  # someone else removed it: the next create decides
        except OSError as exc:
            raise LeaseError(f"cannot take over lease {path}: {_one_line(exc)}") from None
        moved, _ = self._read_path(aside, key)
        try:
            if (moved.token if moved else None) != (judged.token if judged else None):
                try:  # we moved a lease taken a moment ago by another collector: give it back
                    os.link(aside, path)
                except OSError:
                    pass
                return False
            return True
        finally:
            aside.unlink(missing_ok=True)

    def renew(self) -> None:
        """Touch every held lease (the heartbeat); a lease no longer ours is dropped and remembered in ``lost``."""
        with self._lock:
            now = time.time()
            for key in sorted(self.held):
                path = self.path(key)
                info, _ = self._read_path(path, key)
                if info is None or info.token != self.token:
                    self.held.discard(key)
                    self.lost.add(key)
                    log.warning("lost the lease %s to another collector", key)
                    continue
                try:
                    os.utime(path, (now, now))
                except OSError as exc:
                    log.warning("cannot renew lease %s: %s", path, _one_line(exc))

    def release(self, key: str) -> None:
        """Give up the lease on ``key`` (delete its file if it is still ours)."""
        with self._lock:
            if key not in self.held:
                return
            self.held.discard(key)
            path = self.path(key)
            info, _ = self._read_path(path, key)
            if info is not None and info.token == self.token:
                try:
                    path.unlink()
                except OSError as exc:
                    log.warning("cannot remove lease %s: %s", path, _one_line(exc))

    def start(self) -> "LeaseManager":
        """Start the heartbeat thread (a daemon: it dies with the process, and so do the heartbeats)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, name="qra-bench-leases", daemon=True)
            self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            self.renew()

    def close(self) -> None:
        """Stop the heartbeat and release every lease still held."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        for key in sorted(self.held):
            self.release(key)

    def __enter__(self) -> "LeaseManager":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()


def job_key(config_hash: str, seed: int) -> str:
    """The lease key of a job (configuration, seed)."""
    return f"{config_hash}-seed{int(seed)}"


class TableWatch:
    """Ok keys and failed attempts of a table, kept current by reading only the parts added since last time."""

    COLUMNS = ["config_hash", "seed", "fidelity", "max_steps", "status", "run_id"]

    def __init__(self, table_dir: Path) -> None:
        self.table_dir = table_dir
        self.seen: set[str] = set()
        self.ok: set[tuple[str, int, int]] = set()
        self.failed_runs: dict[tuple[str, int, int], set[str]] = {}

    def refresh(self) -> None:
        import pyarrow.parquet as pq

        from qra_bench.table import PART_GLOB

        if not self.table_dir.is_dir():
            return
        for part in sorted(self.table_dir.glob(PART_GLOB)):
            if part.name in self.seen:
                continue
            try:
                rows = pq.read_table(part, columns=self.COLUMNS).to_pylist()
            except Exception as exc:  # the table's own reader names a corrupt part; here it only counts as absent
                log.warning("cannot read %s: %s", part, _one_line(exc))
                continue
            self.seen.add(part.name)
            for r in rows:
                if r["status"] == "ok":
                    self.ok.add((r["config_hash"], int(r["seed"]), int(r["fidelity"])))
                else:
                    key = (r["config_hash"], int(r["seed"]), int(r["max_steps"]))
                    self.failed_runs.setdefault(key, set()).add(r["run_id"])


class JobClaims:
    """The collector's side of leasing: claim a job before it runs, release it when it is over.

    Parameters
    ----------
    table_dir
        The table the jobs write to; leases live in its ``.leases`` folder.
    steps
        The checkpoints (optimizer steps) a finished job has ok rows for.
    max_steps, max_retries
        The recipe's run length and the collector's retry limit (failed attempts are counted as in planning).
    ttl_s, poll_s
        Lease lifetime without a heartbeat (seconds); how often deferred jobs are tried again (seconds).
    """

    def __init__(
        self,
        table_dir: Union[str, os.PathLike],
        steps: Sequence[int],
        max_steps: int,
        max_retries: int,
        ttl_s: float = 120.0,
        poll_s: float = 2.0,
    ) -> None:
        self.table_dir = Path(table_dir)
        self.steps = tuple(int(s) for s in steps)
        self.max_steps, self.max_retries = int(max_steps), int(max_retries)
        self.poll_s = float(poll_s)
        self.leases = LeaseManager(self.table_dir / LEASE_DIR, ttl_s=ttl_s).start()
        self.watch = TableWatch(self.table_dir)
        self.deferred: deque = deque()
        self.done_elsewhere: list[str] = []
        self.exhausted: list[str] = []
        self._last_poll = 0.0

    def _key(self, job: Any) -> str:
        return job_key(job.config.hash, job.seed)

    def claim(self, job: Any) -> tuple[str, Any]:
        """``("run", job)`` (attempt number brought up to date), ``("busy", job)``, ``("done", job)`` or
        ``("exhausted", job)``."""
        key = self._key(job)
        if key in self.leases.held:
            return "run", job  # a retry of a job this collector holds
        if not self.leases.try_acquire(key):
            return "busy", job
        self.watch.refresh()
        if all((job.config.hash, job.seed, s) in self.watch.ok for s in self.steps):
            self.leases.release(key)
            self.done_elsewhere.append(job.label)
            return "done", job
        used = len(self.watch.failed_runs.get((job.config.hash, job.seed, self.max_steps), ()))
        if used >= 1 + self.max_retries:
            self.leases.release(key)
            self.exhausted.append(f"{job.label}: {used} failed attempts by other collectors")
            return "exhausted", job
        return "run", replace(job, attempt=max(job.attempt, used + 1))

    def next(self, pending: deque) -> Optional[Any]:
        """The next job of ``pending`` this collector may run now (claimed), or None.

        Jobs held by a live collector move to :attr:`deferred`; once ``pending`` is empty they go back to
        it every ``poll_s`` seconds, so a job whose holder dies or gives up is run here.
        """
        if not pending and self.deferred and time.monotonic() - self._last_poll >= self.poll_s:
            self._last_poll = time.monotonic()
            pending.extend(self.deferred)
            self.deferred.clear()
        while pending:
            status, job = self.claim(pending.popleft())
            if status == "run":
                return job
            if status == "busy":
                self.deferred.append(job)
        return None

    @property
    def waiting(self) -> bool:
        """Whether jobs held by other collectors are still to be seen through."""
        return bool(self.deferred)

    def release(self, job: Any) -> None:
        self.leases.release(self._key(job))

    def close(self) -> None:
        self.leases.close()
