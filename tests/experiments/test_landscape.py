"""experiments/landscape.py: the mean-over-tasks objective joins per-task tables on (configuration, seed)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from qra_bench.table import ResultsTable

_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(_ROOT / "experiments"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import landscape  # noqa: E402
from test_claims import realistic_rows  # noqa: E402


def test_tasks_are_averaged_per_configuration_and_seed_and_their_times_summed(tmp_path):
    rows = realistic_rows(n_random=4, repeats=1)
    other = [dataclasses.replace(r, task_name="other", eval_loss=r.eval_loss + 1.0, accuracy=r.accuracy - 0.1,
                                 time_total_s=2 * r.time_total_s) for r in rows[: len(rows) // 2]]
    ResultsTable(tmp_path / "a").append(rows)
    ResultsTable(tmp_path / "b").append(other)
    one, _ = landscape.full_fidelity_rows([str(tmp_path / "a")])
    both, hashes = landscape.full_fidelity_rows([str(tmp_path / "a"), str(tmp_path / "b")])
    assert len(hashes) == 2 and set(both["task_name"]) == {"standin+other"}
    # only the (configuration, seed) pairs both tasks ran are kept
    keys = {(r.config_hash, r.seed) for r in other if r.fidelity == r.max_steps}
    assert set(zip(both["config_hash"], both["seed"])) == keys
    ref = one.set_index(["config_hash", "seed"]).loc[list(keys)]
    got = both.set_index(["config_hash", "seed"]).loc[list(keys)]
    assert np.allclose(got["eval_loss"], ref["eval_loss"] + 0.5)
    assert np.allclose(got["accuracy"], ref["accuracy"] - 0.05)
    assert np.allclose(got["time_total_s"], 3 * ref["time_total_s"])
