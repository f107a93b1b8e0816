"""Fixtures of the benchmark tests: a stand-in results table with trial times, and small surrogates of it.

The table comes from the surrogate tests' stand-in (a known smooth function of bits, ranks and fidelity plus
seeded noise; see ``tests/surrogate/conftest.py``): a fixture of the code, never a result. Its rows get a
``time_total_s`` that grows with the fidelity and the average bit width, so the simulated clock has something
to add up.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

from qra_bench.table import ResultsTable

_HERE = Path(__file__).resolve().parent
NAME = "standin-bench"
FAST_XGB = {"n_estimators": 10, "calibration_folds": 2, "n_members": 2}


def _standin_module():
    """tests/surrogate/conftest.py under its own module name (two modules named ``conftest`` would clash)."""
    spec = importlib.util.spec_from_file_location("_surrogate_standin", _HERE.parent / "surrogate" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STANDIN = _standin_module()


def trial_seconds(row) -> float:
    """Made-up wall time of the stand-in trials: 20 s of set-up, then up to 100 s of training (seconds)."""
    return 20.0 + 100.0 * row.fidelity_frac * (0.6 + 0.4 * row.avg_bits / 16)


def write_table(path: Path, **kwargs) -> Path:
    rows = [dataclasses.replace(r, time_total_s=trial_seconds(r)) for r in STANDIN.standin_rows(**kwargs)]
    ResultsTable(path).append(rows)
    return path


@pytest.fixture(scope="session")
def bench_root(tmp_path_factory) -> Path:
    """A repository-like root: ``datasets_cache/tables/standin-bench`` and ``surrogates/standin-bench/{xgb,
    xgb-eval_loss}`` (accuracy and eval_loss surrogates, fitted small)."""
    from qra_bench.surrogate import fit_surrogate

    root = tmp_path_factory.mktemp("bench-root")
    table = write_table(root / "datasets_cache" / "tables" / NAME, n_configs=40)
    fit_surrogate(table, target="accuracy", model="xgb", out=root / "surrogates" / NAME / "xgb", params=FAST_XGB)
    fit_surrogate(
        table, target="eval_loss", model="xgb", out=root / "surrogates" / NAME / "xgb-eval_loss", params=FAST_XGB
    )
    return root


@pytest.fixture(scope="session")
def table_path(bench_root) -> Path:
    return bench_root / "datasets_cache" / "tables" / NAME


@pytest.fixture(scope="session")
def surrogate_path(bench_root) -> Path:
    return bench_root / "surrogates" / NAME / "xgb"
