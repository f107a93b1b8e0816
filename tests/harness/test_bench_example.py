"""The README's user optimizer (its Python example and examples/my_optimizer.py): short, and it runs unchanged."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from qra_bench.harness import BenchSpec, load_plugin, run_benchmark

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "my_optimizer.py"


def test_the_example_is_under_30_lines():
    assert len(EXAMPLE.read_text().splitlines()) < 30


def test_the_user_optimizer_runs_through_the_runner_unchanged(table_path, surrogate_path, tmp_path):
    load_plugin(str(EXAMPLE))
    load_plugin(str(EXAMPLE))  # a second load is a no-op, not a clash in the registry
    spec = BenchSpec(
        benchmark=str(table_path),
        surrogate=str(surrogate_path),
        optimizers=("hill-climb", "random"),
        seeds=(0, 1),
        budgets=("uniform-3bit",),
        max_cost_s=math.inf,
        max_evals=12,
    )
    report = run_benchmark(spec, tmp_path, plots=False)
    runs = [r for r in report.runs if r.optimizer == "hill-climb"]
    assert len(runs) == 2 and all(len(r.evaluations) == 12 for r in runs)
    bench = report.benchmarks["uniform-3bit"]
    for run in runs:
        configs = [
            bench.space.config([int(x) for x in e.bits.split(",")], [int(x) for x in e.ranks.split(",")])
            for e in run.evaluations
        ]
        assert all(bench.is_feasible(c) for c in configs)
    assert "hill-climb" in (tmp_path / "leaderboard.md").read_text()


@pytest.mark.skipif(
    not (REPO / "surrogates" / "tiny-cipher" / "xgb" / "manifest.json").is_file(),
    reason="the headline scenario's surrogate is not in this checkout",
)
def test_the_readmes_python_example_runs_as_written(tmp_path):
    code = re.search(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert code is not None
    out = subprocess.run(
        [sys.executable, "-c", code.group(1)], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert 4.0 < float(out.stdout.split()[-1]) < 6.0  # the headline's eval loss, nats per token
