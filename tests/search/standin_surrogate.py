"""A stand-in table and a small surrogate fitted on it, shared by the search-CLI and sweep tests.

The table is the surrogate tests' stand-in (``tests/surrogate/conftest.py``: a known made-up function of bits
and ranks plus seeded noise, not a result of any trial); the surrogate is a small XGBoost ensemble fitted on
it. Both are built once per test session (a few seconds) and shared read-only.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_FIXTURES = Path(__file__).resolve().parents[1] / "surrogate" / "conftest.py"
_BUILT: dict[str, tuple[Path, Path]] = {}
#: Small ensembles: these tests check plumbing, not surrogate quality.
FAST_XGB = {"n_estimators": 20, "calibration_folds": 2}


def standin_module():
    """``tests/surrogate/conftest.py`` under its own module name (both test folders have a ``conftest``)."""
    spec = importlib.util.spec_from_file_location("surrogate_standin_fixtures", _FIXTURES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_table(path: Path, n_configs: int = 20, design_seed: int = 0) -> Path:
    """A stand-in table of ``n_configs`` configurations x 2 seeds at full fidelity."""
    return standin_module().write_standin_table(
        path, n_configs=n_configs, seeds=(0, 1), fractions=(1.0,), design_seed=design_seed
    )


def table_and_surrogate(root: Path) -> tuple[Path, Path]:
    """``(table, surrogate directory)``, built under ``root`` on the first call of the session."""
    if "standin" not in _BUILT:
        from qra_bench.surrogate import fit_surrogate

        table = write_table(root / "standin-table")
        surrogate = root / "surrogate"
        fit_surrogate(table, target="accuracy", model="xgb", out=surrogate, seed=0, params=FAST_XGB)
        _BUILT["standin"] = (table, surrogate)
    return _BUILT["standin"]
