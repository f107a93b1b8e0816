"""The data root (``QRA_BENCH_DATA``) and compacted tables: benchmarks run from outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qra_bench import data
from qra_bench.harness.benchmark import available_benchmarks, resolve_table
from qra_bench.errors import TableError
from qra_bench.table import ResultsTable
from qra_bench.table_compact import compact_table

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "tiny-news-small"
SHIPPED_TABLE = REPO / "datasets_cache" / "tables" / "tiny-news"
SHIPPED_XGB = REPO / "surrogates" / "tiny-news" / "xgb"


def test_the_default_root_is_the_checkout_and_the_variable_overrides_it(monkeypatch, tmp_path):
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    assert data.data_root() == REPO
    assert data.tables_dir() == REPO / "datasets_cache" / "tables"
    assert data.surrogates_dir() == REPO / "surrogates"
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    assert data.tables_dir() == tmp_path / "tables"
    assert data.surrogate_dir("tiny-news", "gp") == tmp_path / "surrogates" / "tiny-news" / "gp"
    (tmp_path / "datasets_cache" / "tables").mkdir(parents=True)  # a checkout-like root is accepted too
    assert data.tables_dir() == tmp_path / "datasets_cache" / "tables"


def test_built_artifacts_live_under_the_root_and_the_shipped_checkpoint_is_the_fallback(monkeypatch, tmp_path):
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    assert data.cache_dir() == REPO / "datasets_cache"
    assert data.model_dir("tiny") == REPO / "datasets_cache" / "models" / "tiny"
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    assert data.cache_dir() == tmp_path
    # a root of tables and surrogates alone still finds the checkpoint shipped in the checkout
    assert data.model_dir("tiny") == REPO / "datasets_cache" / "models" / "tiny"
    assert data.model_dir("smollm2-135m-elsewhere") == tmp_path / "models" / "smollm2-135m-elsewhere"
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    assert data.model_dir("tiny") == tmp_path / "models" / "tiny"


def test_the_corpora_and_the_tiny_checkpoint_follow_the_variable_in_a_fresh_process(tmp_path):
    code = "import qra_bench.corpora as c, qra_bench.models.tiny as t; print(c.CACHE_DIR); print(t.TINY_DIR)"
    env = {**os.environ, data.ENV_VAR: str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    cache, tiny = out.stdout.split()
    assert Path(cache) == tmp_path and Path(tiny) == REPO / "datasets_cache" / "models" / "tiny"


def test_compacting_keeps_the_content_hash_and_reads_as_a_table(tmp_path):
    expected = ResultsTable(FIXTURE).content_hash()
    single = compact_table(FIXTURE, tmp_path / "tables" / "small.parquet")
    assert single == tmp_path / "tables" / "small.parquet" and ResultsTable(single).content_hash() == expected
    assert len(ResultsTable(single).read()) == len(ResultsTable(FIXTURE).read())
    one_part = compact_table(FIXTURE, tmp_path / "as-dir")
    assert one_part.parent == tmp_path / "as-dir" and ResultsTable(tmp_path / "as-dir").content_hash() == expected
    with pytest.raises(TableError, match="never overwrites"):
        compact_table(FIXTURE, single)
    # names resolve to the compacted file under the root
    assert available_benchmarks(tmp_path) == ["small"]
    assert resolve_table("small", tmp_path) == ("small", single)


@pytest.mark.skipif(
    not (SHIPPED_TABLE.is_dir() and (SHIPPED_XGB / "manifest.json").is_file()),
    reason="the shipped tiny-news table and surrogate are not in this checkout",
)
def test_bench_runs_from_an_unrelated_directory_on_a_data_root(tmp_path):
    root = tmp_path / "data"
    exe = Path(sys.executable).parent / "qra-bench"
    env = {**os.environ, data.ENV_VAR: str(root)}
    compact = subprocess.run(
        [
            str(exe),
            "table",
            "compact",
            "--table",
            str(SHIPPED_TABLE),
            "--out",
            str(root / "tables" / "tiny-news.parquet"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert compact.returncode == 0, compact.stderr
    assert ResultsTable(SHIPPED_TABLE).content_hash() in compact.stdout
    shutil.copytree(SHIPPED_XGB, root / "surrogates" / "tiny-news" / "xgb")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run(
        [
            str(exe),
            "bench",
            "--benchmark",
            "tiny-news",
            "--backend",
            "surrogate",
            "--optimizers",
            "random",
            "--seeds",
            "0",
            "--max-evals",
            "3",
            "--out",
            "out",
        ],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "# Leaderboard: tiny-news, backend surrogate" in run.stdout and "| random |" in run.stdout
    assert (elsewhere / "out" / "leaderboard.md").is_file()
    # without the data root, the same name from the same directory still means the checkout's table
    env.pop(data.ENV_VAR)
    listing = subprocess.run(
        [sys.executable, "-c", "from qra_bench.harness import available_benchmarks as a; print(a())"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        timeout=120,
    )
    assert "tiny-news" in listing.stdout, listing.stderr
