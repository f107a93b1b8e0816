"""`qra-bench fit`: writes the artifact, manifest and plots; user errors are one line with exit status 2."""

from __future__ import annotations

import json

import pytest

from conftest import write_standin_table
from qra_bench.table import ResultsTable


def _fit_and_check(model: str, table, out, cli) -> None:
    code, stdout, err = cli(["fit", "--table", str(table), "--target", "accuracy", "--model", model, "--out", str(out)])
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["table"]["content_hash"] == ResultsTable(table).content_hash()
    assert manifest["model"]["kind"] == model
    for name in ("model.pkl", "parity.png", "learning_curve.png"):
        assert (out / name).is_file()
    assert "random_5fold" in stdout and "seed-noise std" in stdout and str(out) in stdout


def test_fit_writes_manifest_model_and_both_plots(tmp_path, cli):
    # The GP: seconds on a small table. The XGBoost ensemble's CLI run is the slow test below (its 23 fits
    # of 4 boosters each cost about 10 s whatever the table size); fit_surrogate tests cover it fast.
    table = write_standin_table(tmp_path / "table", n_configs=20, seeds=(0, 1), fractions=(1.0,))
    _fit_and_check("gp", table, tmp_path / "surrogates" / "standin" / "gp", cli)


@pytest.mark.slow
def test_fit_with_the_default_xgboost_ensemble(tmp_path, cli):
    table = write_standin_table(tmp_path / "table", n_configs=20, seeds=(0, 1), fractions=(1.0,))
    _fit_and_check("xgb", table, tmp_path / "surrogates" / "standin" / "xgb", cli)


def test_fit_defaults_to_surrogates_table_name_model(tmp_path, cli, monkeypatch):
    """The default artifact directory is under the data root (here ``$QRA_BENCH_DATA``), not the cwd."""
    table = write_standin_table(tmp_path / "small-table", n_configs=12, seeds=(0,), fractions=(1.0,))
    monkeypatch.setenv("QRA_BENCH_DATA", str(tmp_path))
    monkeypatch.chdir(tmp_path / "small-table")
    code, _, err = cli(["fit", "--table", str(table), "--model", "gp"])
    assert code == 0, err
    assert (tmp_path / "surrogates" / "small-table" / "gp" / "manifest.json").is_file()


def test_bad_target_is_a_one_line_error_with_exit_2(standin_table, tmp_path, cli):
    code, stdout, err = cli(["fit", "--table", str(standin_table), "--target", "acc", "--out", str(tmp_path / "x")])
    assert code == 2 and stdout == ""
    assert err == "qra-bench: error: unknown target 'acc'; allowed: accuracy, eval_loss, lm_loss\n"
    assert not (tmp_path / "x").exists()


def test_missing_table_is_a_one_line_error(tmp_path, cli):
    code, _, err = cli(["fit", "--table", str(tmp_path / "none")])
    assert code == 2 and err.count("\n") == 1 and "no table at" in err
