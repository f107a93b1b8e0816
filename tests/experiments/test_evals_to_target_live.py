"""Evaluations to target on live runs: the counting rule and random search's geometric estimate."""

import math
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
from evals_to_target_live import first_on_target, geometric_median  # noqa: E402


def _runs(values: dict) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"optimizer": opt, "seed": seed, "eval": i + 1, "eval_loss": v, "accuracy": -v}
            for (opt, seed), vals in values.items()
            for i, v in enumerate(vals)
        ]
    )


def test_first_evaluation_whose_best_so_far_reaches_the_target_is_counted_and_misses_are_censored():
    runs = _runs({("a", 0): [4.5, 4.30, 4.6], ("a", 1): [4.29, 4.5, 4.5], ("b", 0): [4.5, 4.4, 4.35]})
    got = first_on_target(runs, target=4.31).set_index(["optimizer", "seed"])
    assert got.loc[("a", 0), "first"] == 2 and got.loc[("a", 1), "first"] == 1
    assert math.isnan(got.loc[("b", 0), "first"]) and got.loc[("b", 0), "n_evals"] == 3
    # accuracy is higher-is-better: the same runs, mirrored, hit at the same evaluations
    acc = first_on_target(runs, target=-4.31, metric="accuracy").set_index(["optimizer", "seed"])
    assert acc.loc[("a", 0), "first"] == 2 and math.isnan(acc.loc[("b", 0), "first"])


def test_geometric_median_of_independent_draws():
    assert geometric_median(0.5) == 1 and geometric_median(1.0) == 1
    assert geometric_median(0.125) == 6  # 1 - 0.875**5 < 0.5 <= 1 - 0.875**6
    assert geometric_median(0.0) == math.inf


def test_ratios_divide_medians_and_say_when_a_baseline_is_censored():
    from evals_to_target_live import ratio_lines

    summary = {
        "autoqra": {"median": 2.0, "n_evals": [8, 8], "reached": 2, "seeds": [0, 1]},
        "smac-hpo": {"median": 6.0, "n_evals": [8, 8], "reached": 2, "seeds": [0, 1]},
        "random": {"median": None, "n_evals": [8, 8], "reached": 0, "seeds": [0, 1]},
        "random_geometric": {"median_evals_lower95": 19.0},
    }
    text = "\n".join(ratio_lines(summary))
    assert "smac-hpo: 6 / 2 = 3.0" in text
    assert "random: > 8 / 2, a ratio above 4.0 (0/2 runs" in text and "median >= 19, a ratio of at least 9.5" in text
    assert ratio_lines({"random": summary["random"]}) == []  # no reference, no ratio
