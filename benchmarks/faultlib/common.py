"""Shared parts of the fault benchmark: scratch copies of the fixture table and their audit, stand-in trial
rows, a size-limited tmpfs, the CLI runner, the real-trial model, and the :class:`Outcome` of one fault."""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Optional

BENCHMARKS = Path(__file__).resolve().parent.parent
REPO = BENCHMARKS.parent
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
        counts.update(
            zip(t.column("config_hash").to_pylist(), t.column("seed").to_pylist(), t.column("fidelity").to_pylist())
        )
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
            mounted = (
                subprocess.run(
                    ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True
                ).returncode
                == 0
            )
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


def expect_error(
    out: Outcome, what: str, call: Callable[[], object], *names: str, kind: type = QRBenchError
) -> Optional[str]:
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


_MODEL: list[str] = []


def real_model() -> str:
    """The model of the real-trial cases: a 2-block LLaMA with the tiny model's tokenizer, built once per run
    (``benchmarks/kill_resume.py``'s), so a real fine-tune takes seconds; ``tiny`` where that cannot be built."""
    if not _MODEL:
        import atexit

        folder = Path(tempfile.mkdtemp(prefix="qra-faults-model-"))
        atexit.register(shutil.rmtree, folder, True)
        try:
            sys.path.insert(0, str(BENCHMARKS))
            from kill_resume import small_model

            _MODEL.append(small_model(folder / "small"))
        except Exception:  # no tokenizer of the tiny checkpoint: the embedded model itself
            _MODEL.append("tiny")
    return _MODEL[0]


def _collect_cmd(out_dir: Path, n: int, workers: int = 1, *extra: str, model: Optional[str] = None) -> list[str]:
    """A small real collection: ``n`` random configurations of ``model`` (:func:`real_model`), seed 0, 2 steps."""
    return [
        *QRA,
        "collect",
        "--model",
        model or real_model(),
        "--design",
        "random",
        "--n",
        str(n),
        "--no-anchors",
        "--seeds",
        "0",
        "--steps",
        "2",
        "--fidelities",
        "0.5,1.0",
        "--workers",
        str(workers),
        "--threads",
        "1",
        "--max-retries",
        "1",
        "--out",
        str(out_dir),
        "--no-progress",
        *extra,
    ]
