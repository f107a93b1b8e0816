"""experiments/evals_to_target.py: censoring of runs that miss the target, and an end-to-end run on the
shipped tiny-news scenario's surrogate backend (two evaluations per run, so it only proves the plumbing; marked
slow)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
import evals_to_target as e2t  # noqa: E402


def test_a_run_that_never_reaches_the_target_is_censored_at_max_plus_one():
    frame = pd.DataFrame(
        {
            "optimizer": ["a", "a", "a", "b", "b", "b"],
            "seed": [0] * 6,
            "eval": [1, 2, 3] * 2,
            "eval_loss": [5.0, 4.1, 4.0, 5.0, 4.9, 4.8],
            "accuracy": [0.0] * 6,
        }
    )
    out = e2t.evals_to_target(frame, target=4.2, higher=False, cap=3).set_index("method")
    assert out.loc["a", "first"] == 2 and out.loc["a", "reached"]
    assert out.loc["b", "first"] == 4 and not out.loc["b", "reached"] and out.loc["b", "best"] == 4.8
    # a longer run read at a smaller budget: only its first evaluations count
    short = e2t.evals_to_target(frame, target=4.2, higher=False, cap=1).set_index("method")
    assert short.loc["a", "first"] == 2 and not short.loc["a", "reached"] and short.loc["a", "best"] == 5.0


def test_censored_methods_are_ordered_by_the_best_answer_within_the_budget():
    summary = {
        "random": {"median": 21.0, "median_best": 4.64},
        "smac-hpo": {"median": 21.0, "median_best": 4.63},
        "autoqra": {"median": 2.0, "median_best": 4.61},
    }
    assert e2t.method_order(summary, higher=False) == ["autoqra", "smac-hpo", "random"]
    acc = {k: {"median": v["median"], "median_best": -v["median_best"]} for k, v in summary.items()}
    assert e2t.method_order(acc, higher=True) == ["autoqra", "smac-hpo", "random"]


def test_order_agreement_counts_pairs_tied_within_the_noise_apart_from_reversed_ones():
    def summ(**best):
        return {m: {"median": 21.0 if m != "autoqra" else 2.0, "median_best": v} for m, v in best.items()}

    live = summ(autoqra=4.61, random=4.640, **{"smac-hpo": 4.649})
    near = summ(autoqra=4.61, random=4.647, **{"smac-hpo": 4.646}, evolution=4.62)  # random/SMAC3 within noise
    out = e2t.order_agreement(live, near, noise=0.005, higher=False)
    assert out["order"] == ["autoqra", "random", "smac-hpo"] and out["other_order"] == ["autoqra", "smac-hpo", "random"]
    assert out["pairs"] == {"same": ["autoqra/random", "autoqra/smac-hpo"], "tied": ["random/smac-hpo"], "reversed": []}
    assert out["agree"]
    far = summ(autoqra=4.61, random=4.660, **{"smac-hpo": 4.640})  # SMAC3 ahead by 4 x noise: a reversal
    assert e2t.order_agreement(live, far, noise=0.005, higher=False)["pairs"]["reversed"] == ["random/smac-hpo"]
    assert not e2t.order_agreement(live, far, noise=0.005, higher=False)["agree"]


def test_comparing_a_backend_with_itself_or_with_no_runs_is_a_one_line_error(tmp_path, capsys):
    base = ["--scenario", "tiny-news", "--no-run", "--out", str(tmp_path)]
    assert e2t.main([*base, "--backend", "surrogate", "--compare", "surrogate"]) == 2
    assert e2t.main([*base, "--backend", "surrogate", "--compare", "table+live"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)


@pytest.mark.slow  # about 80 s: the quick path of this script is its censoring rule, tested above
def test_surrogate_backend_runs_resume_and_report_every_method(tmp_path):
    args = [
        "--scenario",
        "tiny-news",
        "--backend",
        "surrogate",
        "--methods",
        "autoqra,random",
        "--seeds",
        "0",
        "--max-evals",
        "2",
        "--out",
        str(tmp_path),
    ]
    assert e2t.main(args) == 0
    d = tmp_path / "tiny-news" / "surrogate"
    record = json.loads((d / "evals_to_target.json").read_text())
    assert set(record["summary"]) == {"autoqra", "random"} and record["max_evals"] == 2
    assert "low-fidelity" in (d / "evals_to_target.md").read_text()
    before = (d / "runs" / "random-0.csv").stat().st_mtime_ns
    assert e2t.main(args) == 0  # resumes: nothing is run again
    assert (d / "runs" / "random-0.csv").stat().st_mtime_ns == before
