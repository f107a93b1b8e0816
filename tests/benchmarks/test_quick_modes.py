"""Every benchmark script runs in its ``--quick`` mode, so none can rot unnoticed.

The list is read from ``benchmarks/*.py`` at collection time: a new benchmark is picked up on its own and
must offer ``--quick`` (a run of seconds to about a minute). Shell scripts and other files are not Python
benchmarks and are skipped. Only the exit status and that something was printed are checked here: what a
benchmark measures is its own business, and timing assertions would fail on a shared machine.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))


def test_every_benchmark_is_found():
    assert {"trial_speed.py", "trial_profile.py", "collector_throughput.py"} <= {p.name for p in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_quick_mode_runs(script, tmp_path):
    assert "--quick" in script.read_text(), f"{script.name} has no --quick mode"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(script), "--quick"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"{script.name} --quick exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    assert proc.stdout.strip(), f"{script.name} --quick printed nothing"
