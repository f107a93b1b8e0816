"""Fault 2: disk full, read-only file system, permission denied during an append."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

from faultlib.common import (
    BENCHMARKS,
    Outcome,
    QRA,
    ResultsTable,
    Scratch,
    _collect_cmd,
    _fill,
    expect_error,
    fixture_copy,
    job_rows,
    one_line,
    part_bytes,
    run_cli,
    tmpfs,
)


# =========================================================================================================
# Fault 2: disk full, read-only, permission denied
# =========================================================================================================
def _append_fails(out: Outcome, what: str, scratch: Scratch, reason: str) -> None:
    """One append to ``scratch`` must fail with a one-line TableWriteError naming ``reason``, adding nothing."""
    from qra_bench.table import TableWriteError

    before = part_bytes(scratch.path)
    rows = job_rows("f" * 64, 7)
    expect_error(
        out, what, lambda: ResultsTable(scratch.path).append(rows), str(scratch.path), reason, kind=TableWriteError
    )
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
            code = (
                "import sys; sys.path.insert(0, sys.argv[1]); from faultlib.common import job_rows\n"
                "from qra_bench.table import ResultsTable, TableWriteError\n"
                "try:\n ResultsTable(sys.argv[2]).append(job_rows('e' * 64, 3))\n"
                "except TableWriteError as exc:\n print(exc); sys.exit(3)\n"
            )
            proc = subprocess.run(
                [
                    "setpriv",
                    "--inh-caps=-all",
                    "--bounding-set=-dac_override,-dac_read_search,-fowner",
                    "--",
                    sys.executable,
                    "-c",
                    code,
                    str(BENCHMARKS),
                    str(scratch.path),
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
            message = proc.stdout.strip()
            out.check(
                proc.returncode == 3 and one_line(message) and "EACCES" in message and not proc.stderr.strip(),
                f"permission denied: rc {proc.returncode}, {message[:120]!r} {proc.stderr[-200:]!r}",
            )
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
    code, stderr = run_cli(cmd[len(QRA) :], in_process=quick)
    # Library warnings and progress bars of a worker that loaded a model may precede it: the error is the
    # last line, the only one of its kind, and there is no traceback.
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("qra-bench: error:")]
    out.check(
        code == 2
        and len(errors) == 1
        and lines[-1] == errors[0]
        and "ENOSPC" in errors[0]
        and "Traceback" not in stderr,
        f"collector on a full disk: rc {code}, {stderr[-300:]!r}",
    )
    out.check(part_bytes(table) == before and not list(table.glob("part-*")), "collector on a full disk wrote a part")
    out.check(
        not list((table / ".leases").glob("*.lease")) if (table / ".leases").exists() else True,
        "collector on a full disk left a lease",
    )
    out.notes.append("collector stops with status 2")
