"""fit_surrogate and the artifact: manifest contents, determinism, the hash binding, save/load, modes."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from conftest import MODEL_SHA, NOISE_STD, TASK_SHA, standin_rows, write_standin_table
from qra_bench.errors import QRBenchError
from qra_bench.space import QRConfig
from qra_bench.surrogate import SurrogateArtifact, fit_surrogate
from qra_bench.surrogate.fit import training_set
from qra_bench.table import SCHEMA_VERSION, ResultsTable

METRICS = ("r2", "spearman", "kendall_tau", "rmse", "top10_recall", "nll", "coverage90")
SPLITS = ("random_5fold", "high_memory", "top_decile")


@pytest.fixture(scope="module")
def fitted(standin_table, fast_xgb, tmp_path_factory):
    out = tmp_path_factory.mktemp("fitted") / "xgb"
    return fit_surrogate(standin_table, model="xgb", out=out, params=fast_xgb), out


def test_manifest_records_binding_provenance_metrics_noise_and_learning_curve(fitted, standin_table):
    artifact, out = fitted
    m = json.loads((out / "manifest.json").read_text())
    assert m["table"]["content_hash"] == ResultsTable(standin_table).content_hash()
    assert m["table"]["schema_version"] == SCHEMA_VERSION
    assert m["code_version"] and m["library_versions"]["xgboost"] != "absent"
    assert m["target"] == {"name": "accuracy", "higher_is_better": True}
    assert m["features"] == artifact.feature_names and "fidelity_frac" in m["features"]
    assert m["training"]["n_rows"] == 160 and m["training"]["n_configs"] == 40
    assert m["model"]["params"]["n_estimators"] == 20 and m["model"]["params"]["n_members"] >= 5
    for split in SPLITS:
        for key in METRICS:
            assert key in m["metrics"][split]
        assert m["metrics"][split]["n"] > 0
    rf = m["metrics"]["random_5fold"]
    assert rf["n"] == 80  # scored on the full-fidelity rows only: 40 configurations x 2 seeds
    assert all(math.isfinite(rf[k]) for k in METRICS)
    # Seed noise of the stand-in is known; the pooled estimate from 40 pairs must be close to it.
    assert m["noise_floor"]["full"]["std"] == pytest.approx(NOISE_STD, rel=0.35)
    assert m["rmse_vs_noise"]["rmse"] == rf["rmse"]
    assert [p["fraction"] for p in m["learning_curve"]] == [0.1, 0.25, 0.5, 1.0]
    sizes = [p["n_train_rows"] for p in m["learning_curve"]]
    assert sizes == sorted(sizes) and sizes[-1] == rf["n_train_rows"]
    assert m["memory"]["check"]["rows_checked"] == 160  # the rebuilt memory model reproduces the table's bytes
    assert m["importance"]["source"] == "none (zeros)"
    for name in ("model.pkl", "predictions.csv", "parity.png", "learning_curve.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "parity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_refitting_from_the_same_table_and_seed_gives_the_same_metrics(fitted, standin_table, fast_xgb):
    artifact, _ = fitted
    again = fit_surrogate(standin_table, model="xgb", params=fast_xgb)
    for key in ("metrics", "learning_curve", "noise_floor"):
        assert json.dumps(again.manifest[key], sort_keys=True) == json.dumps(artifact.manifest[key], sort_keys=True)
    other = fit_surrogate(standin_table, model="xgb", params=fast_xgb, seed=1)
    assert other.manifest["metrics"] != artifact.manifest["metrics"]


def test_load_round_trip_predicts_the_same(fitted):
    artifact, out = fitted
    loaded = SurrogateArtifact.load(out)
    configs = artifact.space.sample_batch(np.random.default_rng(0), 20)
    mean, std = artifact.predict_configs(configs)
    mean2, std2 = loaded.predict_configs(configs)
    np.testing.assert_array_equal(mean, mean2)
    np.testing.assert_array_equal(std, std2)
    assert np.all(std > 0)
    low, _ = loaded.predict_configs(configs, fidelity_frac=0.5)
    assert np.mean(low) < np.mean(mean)  # the stand-in's learning curve: less training, lower accuracy
    bi, ri = loaded.encoder.indices(configs)
    np.testing.assert_array_equal(loaded.predict_indices(bi, ri)[0], mean)


def test_a_changed_table_is_refused_naming_both_hashes_unless_overridden(fitted, tmp_path):
    artifact, out = fitted
    table = tmp_path / "table"
    shutil.copytree(artifact.manifest["table"]["path"], table)
    SurrogateArtifact.load(out, table_path=table)  # same content, other place: accepted
    ResultsTable(table).append(standin_rows(n_configs=1, seeds=(9,), fractions=(1.0,), design_seed=99))
    new_hash = ResultsTable(table).content_hash()
    with pytest.raises(QRBenchError) as info:
        SurrogateArtifact.load(out, table_path=table)
    message = str(info.value)
    assert new_hash in message and artifact.table_hash in message and "\n" not in message
    loaded = SurrogateArtifact.load(out, table_path=table, allow_hash_mismatch=True)
    assert loaded.table_hash == artifact.table_hash


def test_a_replaced_model_file_is_refused(fitted, tmp_path):
    _, out = fitted
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "model.pkl").write_bytes((copy / "model.pkl").read_bytes() + b"\0")
    with pytest.raises(QRBenchError, match="model file was replaced or corrupted"):
        SurrogateArtifact.load(copy)
    with pytest.raises(QRBenchError, match="manifest.json is missing"):
        SurrogateArtifact.load(tmp_path / "nowhere")


def test_user_errors_name_the_bad_value_and_the_allowed_ones(standin_table, tmp_path):
    with pytest.raises(QRBenchError, match="unknown target 'acc'; allowed: accuracy, eval_loss, lm_loss"):
        fit_surrogate(standin_table, target="acc")
    with pytest.raises(QRBenchError, match="unknown surrogate model 'rf'; allowed: xgb, gp"):
        fit_surrogate(standin_table, model="rf")
    with pytest.raises(QRBenchError, match="unknown fidelity mode"):
        fit_surrogate(standin_table, fidelity="some")
    with pytest.raises(QRBenchError, match="no table at"):
        fit_surrogate(tmp_path / "missing")


def test_a_table_of_another_architecture_is_refused(tmp_path):
    table = write_standin_table(tmp_path / "t", n_configs=5)
    with pytest.raises(QRBenchError, match="architecture llama-3.2-3b has 28"):
        fit_surrogate(table, arch="llama-3.2-3b")


def test_full_fidelity_mode_and_a_loss_target(standin_table, fast_xgb):
    artifact = fit_surrogate(standin_table, target="eval_loss", fidelity="full", params=fast_xgb)
    assert artifact.manifest["training"]["n_rows"] == 80
    assert "fidelity_frac" not in artifact.feature_names
    assert artifact.manifest["target"] == {"name": "eval_loss", "higher_is_better": False}


def test_multi_fidelity_predicts_full_from_the_low_fidelity_observation(standin_table, fast_xgb):
    artifact = fit_surrogate(standin_table, fidelity="multi", params=fast_xgb)
    assert artifact.feature_names[-1] == "low_fidelity_accuracy"
    assert artifact.manifest["fidelity"] == {"mode": "multi", "low_fidelity": 0.5}
    assert artifact.manifest["training"]["n_rows"] == 80
    configs = [QRConfig(r.bits, r.ranks) for r in standin_rows(n_configs=3, seeds=(0,), fractions=(0.5,))]
    with pytest.raises(QRBenchError, match="pass low_fidelity_obs"):
        artifact.predict_configs(configs)
    mean, std = artifact.predict_configs(configs, low_fidelity_obs=np.array([0.5, 0.6, 0.7]))
    assert mean.shape == std.shape == (3,)
    with pytest.raises(QRBenchError, match="low fidelity 0.3 not in the table; allowed: 0.5"):
        fit_surrogate(standin_table, fidelity="multi", low_fidelity=0.3)


def test_gp_surrogate_fits_and_reports(standin_table, tmp_path):
    artifact = fit_surrogate(
        standin_table, model="gp", fidelity="full", out=tmp_path / "gp", params={"n_restarts_optimizer": 0}
    )
    rf = artifact.manifest["metrics"]["random_5fold"]
    assert all(math.isfinite(rf[k]) for k in METRICS)
    assert "Matern" in artifact.manifest["model"]["fitted"]["kernel"]
    loaded = SurrogateArtifact.load(tmp_path / "gp")
    configs = artifact.space.sample_batch(np.random.default_rng(1), 5)
    np.testing.assert_allclose(loaded.predict_configs(configs)[0], artifact.predict_configs(configs)[0])


def test_importance_priors_from_a_file_or_a_matching_cache_entry(standin_table, fast_xgb, tmp_path, monkeypatch):
    import qra_bench.corpora

    q, r = np.linspace(0, 1, 8).tolist(), np.linspace(1, 0, 8).tolist()
    priors = tmp_path / "priors.json"
    priors.write_text(json.dumps({"importance_q": q, "importance_r": r}))
    artifact = fit_surrogate(standin_table, fidelity="full", importance=priors, params=fast_xgb)
    assert artifact.manifest["importance"]["source"] == str(priors)
    assert artifact.encoder_spec.importance_q == tuple(q)
    # The same priors handed over as arrays encode the same features.
    given = training_set(standin_table, fidelity="full", importance=(q, r))
    assert given.importance_source == "given arrays"
    np.testing.assert_array_equal(given.data.X, training_set(standin_table, fidelity="full", importance=priors).data.X)
    with pytest.raises(QRBenchError, match="importance arrays"):
        training_set(standin_table, importance=(q[:3], r))
    col = artifact.feature_names.index("iq_bits")
    X = artifact.encoder.transform_configs(artifact.space.sample_batch(np.random.default_rng(0), 10))
    assert np.ptp(X[:, col]) > 0
    # A cached priors file counts only when it was measured on the table's model and task (by SHA-256).
    monkeypatch.setattr(qra_bench.corpora, "CACHE_DIR", tmp_path)
    (tmp_path / "importance").mkdir()
    entry = {"importance_q": q, "importance_r": r, "raw_q": q, "raw_r": r, "model_sha256": "x", "task_sha256": "y"}
    (tmp_path / "importance" / "tiny-standin-0123.json").write_text(json.dumps(entry))
    assert training_set(standin_table).importance_source == "none (zeros)"
    entry.update(model_sha256=MODEL_SHA, task_sha256=TASK_SHA)
    (tmp_path / "importance" / "tiny-standin-4567.json").write_text(json.dumps(entry))
    cached = training_set(standin_table)
    assert cached.importance_source.endswith("tiny-standin-4567.json")
    assert cached.encoder_spec.importance_r == tuple(r)
