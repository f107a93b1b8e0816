"""The surrogate on a real results table: rows written by real trials (tests/fixtures/tiny-news-small/)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from qra_bench.surrogate import SurrogateArtifact, fit_surrogate
from qra_bench.table import ResultsTable

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "tiny-news-small"
METRICS = ("r2", "spearman", "kendall_tau", "rmse", "top10_recall", "nll", "coverage90")

pytestmark = pytest.mark.skipif(not any(FIXTURE.glob("part-*.parquet")), reason=f"no real table at {FIXTURE}")


@pytest.fixture(scope="module")
def real_fit(tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "xgb"
    return fit_surrogate(FIXTURE, target="eval_loss", model="xgb", out=out), out


def test_fit_on_real_trials_gives_finite_metrics_and_binds_to_the_table(real_fit):
    artifact, out = real_fit
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["table"]["content_hash"] == ResultsTable(FIXTURE).content_hash()
    assert manifest["memory"]["check"]["rows_checked"] == manifest["training"]["n_rows"]  # bytes reproduced
    random = manifest["metrics"]["random_5fold"]
    for key in METRICS:
        assert random[key] is not None and math.isfinite(random[key]), key
    assert random["n"] == manifest["training"]["n_full_fidelity_rows"]
    noise = manifest["noise_floor"]["full"]
    if noise["n_groups"]:
        assert noise["std"] > 0 and manifest["rmse_vs_noise"]["ratio"] > 0
    loaded = SurrogateArtifact.load(out, table_path=FIXTURE)
    configs = loaded.space.sample_batch(np.random.default_rng(0), 8)
    mean, std = loaded.predict_configs(configs)
    # eval_loss of the tiny news model lives between its 16-bit (about 4.3) and 2-bit (about 5.1) values
    assert (std > 0).all() and ((mean > 3.5) & (mean < 6.0)).all()


def test_refit_on_the_same_real_table_and_seed_gives_the_same_manifest_metrics(real_fit, tmp_path):
    _, out = real_fit
    fit_surrogate(FIXTURE, target="eval_loss", model="xgb", out=tmp_path / "again")
    first = json.loads((out / "manifest.json").read_text())["metrics"]
    again = json.loads((tmp_path / "again" / "manifest.json").read_text())["metrics"]
    assert again == first
