"""Leases on collector jobs: exclusive, renewed, taken over from dead or silent holders, invisible to readers."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from faultlib.collectors import SimJob  # noqa: E402
from faultlib.collectors import _Cfg as SimCfg  # noqa: E402

from qra_bench.leases import LEASE_DIR, JobClaims, LeaseInfo, LeaseManager, job_key
from qra_bench.table import ResultsTable

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "tiny-news-small"


def test_a_lease_has_one_holder_until_it_is_released(tmp_path):
    a, b = LeaseManager(tmp_path), LeaseManager(tmp_path)
    assert a.try_acquire("k") and a.try_acquire("k")  # idempotent for its holder
    assert not b.try_acquire("k")
    info, _ = b.read("k")
    assert info.pid == os.getpid() and info.host == socket.gethostname() and info.token == a.token
    a.release("k")
    assert not (tmp_path / "k.lease").exists()
    assert b.try_acquire("k") and not a.try_acquire("k")


def test_a_heartbeat_keeps_a_lease_and_a_silent_one_expires(tmp_path):
    a = LeaseManager(tmp_path, ttl_s=0.6, heartbeat_s=0.1).start()
    b = LeaseManager(tmp_path, ttl_s=0.6)
    assert a.try_acquire("k")
    time.sleep(1.2)
    assert not b.try_acquire("k"), "a renewed lease was taken over"
    a._stop.set()
    a._thread.join()
    time.sleep(0.9)
    assert b.try_acquire("k") and b.taken_over == 1
    a.renew()
    assert "k" in a.lost and "k" not in a.held  # the old holder learns it lost the lease
    a.close()
    assert b.read("k")[0].token == b.token  # closing the old holder does not delete the new lease


def test_the_lease_of_a_dead_holder_on_this_host_is_taken_over_at_once(tmp_path):
    code = (
        "import sys, os; sys.path.insert(0, sys.argv[1]); from qra_bench.leases import LeaseManager; "
        "assert LeaseManager(sys.argv[2]).try_acquire('k'); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, str(REPO), str(tmp_path)], check=True, timeout=120)
    info, _ = LeaseManager(tmp_path).read("k")
    assert info is not None and info.pid != os.getpid()
    b = LeaseManager(tmp_path, ttl_s=3600)
    assert b.try_acquire("k") and b.taken_over == 1


def test_a_fresh_lease_of_another_host_waits_for_its_expiry(tmp_path):
    foreign = LeaseInfo("k", "f" * 32, 1, "some-other-host", 0.0, time.time())
    (tmp_path / "k.lease").write_text(foreign.to_json())
    assert not LeaseManager(tmp_path, ttl_s=3600).try_acquire("k")
    old = time.time() - 7200
    os.utime(tmp_path / "k.lease", (old, old))
    assert LeaseManager(tmp_path, ttl_s=3600).try_acquire("k")


def test_a_garbled_lease_file_counts_as_held_until_it_is_old(tmp_path):
    (tmp_path / "k.lease").write_text("{not json")
    assert not LeaseManager(tmp_path, ttl_s=60).try_acquire("k")
    old = time.time() - 120
    os.utime(tmp_path / "k.lease", (old, old))
    manager = LeaseManager(tmp_path, ttl_s=60)
    assert manager.try_acquire("k") and json.loads((tmp_path / "k.lease").read_text())["token"] == manager.token


def test_a_takeover_never_removes_a_lease_taken_meanwhile(tmp_path):
    """The takeover moves the file aside and gives it back when it is not the stale lease it judged."""
    stale = LeaseInfo("k", "s" * 32, 1, "gone-host", 0.0, 0.0)
    fresh = LeaseManager(tmp_path)
    assert fresh.try_acquire("k")
    taker = LeaseManager(tmp_path)
    assert not taker._move_aside(taker.path("k"), "k", stale)
    assert fresh.read("k")[0].token == fresh.token


def test_unsafe_keys_are_refused(tmp_path):
    with pytest.raises(ValueError):
        LeaseManager(tmp_path).path("../escape")


def test_a_read_only_lease_folder_is_a_one_line_table_error(tmp_path, monkeypatch):
    import errno

    from qra_bench.leases import LeaseError

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    manager = LeaseManager(tmp_path)
    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(LeaseError, match=r"Read-only file system \(EROFS\)") as info:
        manager.try_acquire("k")
    assert "\n" not in str(info.value)


def test_readers_and_the_content_hash_ignore_leases(tmp_path):
    table = tmp_path / "t"
    shutil.copytree(FIXTURE, table)
    before = ResultsTable(table).content_hash()
    manager = LeaseManager(table / LEASE_DIR)
    assert manager.try_acquire(job_key("a" * 64, 0))
    (table / LEASE_DIR / ".tmp-leftover").write_text("x")
    assert ResultsTable(table).content_hash() == before
    assert ResultsTable(table).validate().startswith("OK")
    assert len(ResultsTable(table).part_paths()) == len(list(FIXTURE.glob("part-*.parquet")))


_Job, _Cfg = SimJob, SimCfg  # the stand-in job of the fault benchmark: config.hash, seed, attempt, label


def test_claims_skip_jobs_finished_elsewhere_and_defer_jobs_held_by_a_live_collector(tmp_path):
    table = tmp_path / "t"
    shutil.copytree(FIXTURE, table)
    frame = ResultsTable(table).read()
    done = frame.iloc[0]
    steps = sorted(frame[(frame["config_hash"] == done["config_hash"]) & (frame["seed"] == done["seed"])]["fidelity"])
    other = LeaseManager(table / LEASE_DIR)
    assert other.try_acquire(job_key("b" * 64, 0))  # a live collector holds this job
    claims = JobClaims(table, steps, int(done["max_steps"]), max_retries=1, poll_s=0.0)
    try:
        finished = _Job(_Cfg(done["config_hash"]), int(done["seed"]))
        held, free = _Job(_Cfg("b" * 64), 0), _Job(_Cfg("c" * 64), 0)
        pending = deque([finished, held, free])
        assert claims.next(pending) == free
        assert claims.next(pending) is None and claims.waiting
        assert claims.done_elsewhere == [finished.label]
        other.release(job_key("b" * 64, 0))  # the other collector gives up without finishing
        assert claims.next(pending) == held and not claims.waiting
    finally:
        claims.close()
    assert not list((table / LEASE_DIR).glob("*.lease"))


def test_claims_count_failed_attempts_of_other_collectors(tmp_path):
    from dataclasses import replace

    table = tmp_path / "t"
    shutil.copytree(FIXTURE, table)
    row = ResultsTable(table).read().iloc[0]
    from qra_bench.table import TrialRow

    template = TrialRow.from_dict(row.to_dict())
    failed = [
        replace(
            template,
            config_hash="d" * 64,
            status="failed",
            error="RuntimeError: boom",
            eval_loss=None,
            run_id=f"run-{i}",
        )
        for i in range(2)
    ]
    for r in failed:
        ResultsTable(table).append([r])
    claims = JobClaims(table, [template.fidelity], template.max_steps, max_retries=1)
    try:
        assert claims.claim(_Job(_Cfg("d" * 64), template.seed))[0] == "exhausted"
    finally:
        claims.close()
    more = JobClaims(table, [template.fidelity], template.max_steps, max_retries=2)
    try:
        status, job = more.claim(_Job(_Cfg("d" * 64), template.seed))
        assert status == "run" and job.attempt == 3
    finally:
        more.close()
