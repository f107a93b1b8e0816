"""experiments/landscape.py: the mean-over-tasks objective joins per-task tables on (configuration, seed)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from qra_bench.table import ResultsTable

_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(_ROOT / "experiments"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import landscape  # noqa: E402
from test_claims import realistic_rows  # noqa: E402


def test_tasks_are_averaged_per_configuration_and_seed_and_their_times_summed(tmp_path):
    rows = realistic_rows(n_random=4, repeats=1)
    other = [
        dataclasses.replace(
            r,
            task_name="other",
            eval_loss=r.eval_loss + 1.0,
            accuracy=r.accuracy - 0.1,
            time_total_s=2 * r.time_total_s,
        )
        for r in rows[: len(rows) // 2]
    ]
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


def test_one_tasks_rows_split_over_two_tables_read_as_one_and_a_shared_trial_counts_once(tmp_path):
    rows = [r for r in realistic_rows(n_random=4, repeats=1) if r.fidelity == r.max_steps]
    half = len(rows) // 2
    ResultsTable(tmp_path / "a").append(rows[: half + 1])
    # the second table repeats one trial of the first with another score: the first table's row is kept
    ResultsTable(tmp_path / "b").append([dataclasses.replace(rows[half], eval_loss=99.0)] + rows[half + 1 :])
    union, hashes = landscape.full_fidelity_rows([f"{tmp_path / 'a'},{tmp_path / 'b'}"])
    whole, _ = landscape.full_fidelity_rows([str(tmp_path / "a")])
    assert len(hashes) == 2 and len(union) == len(rows) and union["eval_loss"].max() < 99.0
    assert len(whole) == half + 1


def test_window_losses_average_to_the_trials_lm_loss_and_steps_are_paired():
    from qra_bench.models import load_base
    from qra_bench.tasks import load_task
    from qra_bench.trial import evaluate

    base = load_base("tiny")
    task = load_task("news", base.tokenizer)
    task = dataclasses.replace(task, lm_ids=task.lm_ids[:20])
    model = base.fresh_copy(torch.device("cpu"), torch.float32)
    windows = landscape.lm_window_losses(model, task.lm_ids, torch.device("cpu"), batch=16)
    assert windows.shape == (20,)
    assert windows.mean() == pytest.approx(evaluate(model, task, 200, torch.device("cpu"), n_eval=8).lm_loss, abs=1e-5)
    step = landscape.paired_step(windows, windows + 0.01)
    assert step["diff"] == pytest.approx(0.01) and step["se"] < 1e-9


def test_a_named_sample_is_read_from_a_design_file_and_its_axes_come_from_its_configurations_alone(tmp_path):
    import json

    import pandas as pd

    from qra_bench.space import QRConfig

    design = tmp_path / "d.jsonl"
    design.write_text(json.dumps({"bits": [2, 4] * 4, "ranks": [4, 8] * 4}) + "\n")
    assert landscape.sample_hashes(str(design)) == {QRConfig([2, 4] * 4, [4, 8] * 4).hash}
    # a full factorial grid: the two regressors are uncorrelated, so each drop is exactly what that axis explains
    bits, rank = np.repeat(np.linspace(2, 16, 8), 5), np.tile(np.linspace(2, 4, 5), 8)
    only_bits = landscape._axes(pd.DataFrame({"avg_bits": bits, "log2_rank": rank, "mean": -0.1 * bits}))
    assert only_bits["n"] == 40 and only_bits["r2_both"] == pytest.approx(1.0)
    assert only_bits["r2_drop_without_bits"] == pytest.approx(1.0) and only_bits["r2_drop_without_rank"] < 1e-9
    both = landscape._axes(pd.DataFrame({"avg_bits": bits, "log2_rank": rank, "mean": -bits / 14 - rank / 2}))
    assert min(both["r2_drop_without_bits"], both["r2_drop_without_rank"]) >= 0.10


def test_the_r2_drops_carry_a_bootstrap_interval_that_brackets_them_and_narrows_with_more_configurations():
    import pandas as pd

    rng = np.random.default_rng(1)

    def sample(n):
        bits, rank = rng.uniform(2, 16, n), rng.uniform(2, 4, n)
        return pd.DataFrame(
            {"avg_bits": bits, "log2_rank": rank, "mean": -bits / 14 - rank / 2 + rng.normal(0, 0.3, n)}
        )

    small, large = landscape._axes(sample(30)), landscape._axes(sample(600))
    for axes in (small, large):
        for axis in ("bits", "rank"):
            lo, hi = axes[f"r2_drop_without_{axis}_90"]
            assert lo < axes[f"r2_drop_without_{axis}"] < hi
    width = {k: np.diff(a["r2_drop_without_rank_90"])[0] for k, a in (("small", small), ("large", large))}
    assert width["large"] < width["small"] / 2
    frame = sample(30)
    assert landscape._axes(frame)["r2_drop_without_bits_90"] == landscape._axes(frame)["r2_drop_without_bits_90"]


def test_focus_accuracy_becomes_a_metric_only_when_every_row_of_one_task_records_it():
    import json

    import pandas as pd

    rec = json.dumps({"focus_accuracy": 0.25, "proxy_focus_accuracy": 0.02})
    both = pd.DataFrame({"task_name": ["cipher"] * 2, "extra_metrics": [rec, json.dumps({"focus_accuracy": 0.5})]})
    assert landscape._add_focus_accuracy(both) and list(both["focus_accuracy"]) == [0.25, 0.5]
    older = pd.DataFrame({"task_name": ["cipher"] * 2, "extra_metrics": [rec, ""]})
    assert not landscape._add_focus_accuracy(older) and "focus_accuracy" not in older
    mean = pd.DataFrame({"task_name": ["news+cipher"] * 2, "extra_metrics": [rec, rec]})
    assert not landscape._add_focus_accuracy(mean)
