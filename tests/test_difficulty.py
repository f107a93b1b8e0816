"""The difficulty card's computations and the best-fitting-uniform baseline, on a small hand-made frame whose
answers are known exactly (the numbers are constructed for the test, not results)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from qra_bench.difficulty import Bar, best_fitting_uniform, compute_card, config_means
from qra_bench.space import QRConfig, SearchSpace
from qra_bench.table1 import Table1Row, baseline_configs, pick_beats_uniform

L = 2
SPACE = SearchSpace(L, bits=(2, 4, 16), ranks=(4, 16))


def _rows(cfg: QRConfig, values: list[float], memory: int) -> list[dict]:
    rows = []
    for seed, v in enumerate(values):
        for frac in (0.25, 0.5, 1.0):
            rows.append(
                {
                    "config_hash": cfg.hash,
                    "bits": cfg.bits,
                    "ranks": cfg.ranks,
                    "seed": seed,
                    "fidelity_frac": frac,
                    "eval_loss": v + (1.0 - frac),
                    "accuracy": 1.0 - v / 10,
                    "mem_predicted_bytes": memory,
                }
            )
    return rows


@pytest.fixture
def frame() -> pd.DataFrame:
    rows = []
    # Uniform configurations: 2-bit r4 (smallest, 100 bytes), 4-bit r4 (150), 4-bit r16 (250, over budget 200),
    # 16-bit r16 (400, over budget).
    rows += _rows(SPACE.uniform(2, 4), [5.0, 5.02, 4.98], 100)
    rows += _rows(SPACE.uniform(4, 4), [4.5, 4.52, 4.48], 150)
    rows += _rows(SPACE.uniform(4, 16), [4.0, 4.02, 3.98], 250)
    rows += _rows(SPACE.uniform(16, 16), [3.9, 3.92, 3.88], 400)
    # Mixed: one at 3 seeds that beats the best fitting uniform by 0.3, two single-seed ones.
    rows += _rows(QRConfig((4, 2), (16, 4)), [4.2, 4.22, 4.18], 190)
    rows += _rows(QRConfig((2, 4), (16, 4)), [4.21], 180)
    rows += _rows(QRConfig((2, 2), (16, 4)), [4.9], 120)
    return pd.DataFrame(rows)


def test_config_means_average_full_fidelity_rows_per_configuration(frame):
    means = config_means(frame, "eval_loss").set_index("config_hash")
    row = means.loc[SPACE.uniform(4, 4).hash]
    assert row["mean"] == pytest.approx(4.5) and row["n_seeds"] == 3 and row["memory"] == 150
    assert row["se"] == pytest.approx(0.02 / math.sqrt(3))
    assert bool(row["uniform"]) and not bool(means.loc[QRConfig((4, 2), (16, 4)).hash, "uniform"])


def test_best_fitting_uniform_ignores_configurations_over_the_budget(frame):
    means = config_means(frame, "eval_loss")
    best = best_fitting_uniform(means, 200, higher=False)
    assert best.bits == (4, 4) and best.ranks == (4, 4) and best.mean == pytest.approx(4.5)
    assert best_fitting_uniform(means, 1000, higher=False).bits == (16, 16)
    assert best_fitting_uniform(means, 99, higher=False) is None


def test_card_measures_advantage_noise_target_and_random_search_cost(frame):
    card = compute_card(
        frame,
        "eval_loss",
        "b",
        200,
        smallest_bytes=100,
        sweep_budgets=[("small", 160), ("b", 200)],
        n_uniform_anchors=4,
        bar=Bar(min_full_trials=10, min_band_configs=2, n_best=2),
    )
    assert card.noise_std == pytest.approx(0.02) and card.noise_configs == 5
    assert card.best_uniform.bits == (4, 4) and card.best_mixed.bits == (4, 2)
    assert card.advantage == pytest.approx(0.3) and card.advantage_noise == pytest.approx(15.0)
    assert card.advantage_se == pytest.approx(0.3 / math.hypot(0.02 / math.sqrt(3), 0.02 / math.sqrt(3)))
    # target = 4.2 + 2 x 0.02; fitting means: 5.0, 4.5, 4.2, 4.21, 4.9 -> two within (4.2 and 4.21)
    assert card.n_fitting == 5 and card.target == pytest.approx(4.24) and card.n_within == 2
    assert card.random_evals_to_target == pytest.approx(6 / 3)
    # the curve: at 160 bytes the mixed ones do not fit but (2,2) r(16,4) at 120 does
    small = card.curve[0]
    assert small["best_uniform"] == "uniform 4-bit r4" and small["best_mixed_mean"] == pytest.approx(4.9)
    assert small["advantage"] == pytest.approx(4.5 - 4.9)
    # the bar: band = memory >= 100 + 0.75 x 100 = 175 and <= 200: two mixed configurations
    assert card.bar.band_configs == 2 and card.bar.full_trials == 17 and card.bar.fidelities_per_trial == 3
    assert card.bar.anchors_at_min_seeds == 4 and card.bar.best_at_min_seeds == 1 and not card.bar.met


def test_random_search_cost_is_estimated_on_the_blind_sample_when_one_is_given(frame):
    # the sample holds the two worst fitting configurations, one outside the table and one over the budget
    sample = {SPACE.uniform(2, 4).hash, QRConfig((2, 2), (16, 4)).hash, QRConfig((4, 4), (4, 16)).hash}
    sample.add(SPACE.uniform(16, 16).hash)
    card = compute_card(frame, "eval_loss", "b", 200, smallest_bytes=100, sample=sample, sample_name="blind")
    # the table-wide count is unchanged; the estimate uses the 2 fitting sample configurations, none within
    assert card.n_within == 2 and card.n_fitting == 5
    assert card.sample_fitting == 2 and card.sample_within == 0 and card.sample_name == "blind"
    assert card.random_evals_to_target == pytest.approx(3 / 1)
    # one hit in the sample: (2 + 1) / (1 + 1)
    hit = compute_card(frame, "eval_loss", "b", 200, 100, sample=sample | {QRConfig((2, 4), (16, 4)).hash})
    assert hit.sample_fitting == 3 and hit.sample_within == 1 and hit.random_evals_to_target == pytest.approx(2.0)


def test_the_surrogate_tau_is_read_on_fitting_configurations_only(frame):
    means = config_means(frame, "eval_loss")
    full = frame[frame["fidelity_frac"] == 1.0]
    # a perfect ranking on everything fitting, inverted on what does not fit
    pred = full.assign(
        observed=full["eval_loss"],
        mean=np.where(full["mem_predicted_bytes"] <= 200, full["eval_loss"], -full["eval_loss"]),
    )
    card = compute_card(frame, "eval_loss", "b", 200, 100, predictions={"xgb": pred})
    tau = card.surrogate_tau["xgb"]
    assert tau["n_configs"] == int((means["memory"] <= 200).sum()) == 5
    assert tau["all"]["tau"] == pytest.approx(1.0)


def test_baselines_include_the_best_measured_uniform_pair_that_fits(frame):
    labels = dict(baseline_configs(SPACE, frame, "eval_loss", 200))
    assert labels["16-bit LoRA, rank 16"] == SPACE.uniform(16, 16)
    assert labels["uniform 4-bit, rank 16 (QLoRA-style)"] == SPACE.uniform(4, 16)
    assert labels["best fitting uniform: 4-bit, rank 4"] == SPACE.uniform(4, 4)


def test_the_pick_beats_uniform_only_beyond_two_standard_errors():
    def row(value: float, se: float) -> Table1Row:
        return Table1Row("x", (4, 4), (4, 4), value, se, math.nan, 3, 0, True, "t")

    assert pick_beats_uniform(row(4.2, 0.01), row(4.5, 0.01), higher=False)[0]
    assert not pick_beats_uniform(row(4.49, 0.01), row(4.5, 0.01), higher=False)[0]
    assert not pick_beats_uniform(row(4.2, 0.01), None, higher=False)[0]
