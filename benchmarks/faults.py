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
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faultlib.artifacts import fault_damaged_artifacts  # noqa: E402
from faultlib.collectors import (  # noqa: E402,F401  (names the tests use)
    _real_dask_collect,
    _real_two_collectors,
    fault_dask_worker_killed,
    fault_two_collectors,
    sim_collector,
)
from faultlib.common import Audit, Outcome, fixture_copy, job_rows, tmpfs, _fill  # noqa: E402,F401
from faultlib.inputs import fault_hostile_api, fault_ranges  # noqa: E402
from faultlib.storage import _collector_on_full_disk, fault_write_errors  # noqa: E402,F401


FAULTS: dict[int, Callable[[Path, bool], Outcome]] = {
    1: fault_two_collectors,
    2: fault_write_errors,
    3: fault_dask_worker_killed,
    4: fault_damaged_artifacts,
    5: fault_hostile_api,
    6: fault_ranges,
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
    print(
        f"{passed}/{len(outcomes)} faults passed, {cases} cases, {time.perf_counter() - t0:.1f} s"
        f"{' (quick)' if args.quick else ''}"
    )
    print(f"{total.lost} rows lost, {total.duplicates} duplicates, {total.corrupt} corrupt parts")
    return 0 if passed == len(outcomes) and total == Audit() else 1


if __name__ == "__main__":
    sys.exit(main())
