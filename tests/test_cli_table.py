"""`qra-bench table info|validate`: output on a good table, one-line errors (exit 2) that modify nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qra_bench.table import ResultsTable, TrialRow


def make_row(config: str, seed: int, fidelity: int) -> TrialRow:
    return TrialRow(
        config_hash=config,
        bits=(4, 8),
        ranks=(8, 16),
        n_blocks=2,
        avg_bits=6.0,
        avg_rank=12.0,
        seed=seed,
        fidelity=fidelity,
        fidelity_frac=fidelity / 200,
        max_steps=200,
        status="ok",
        eval_loss=1.0 + seed,
        mem_predicted_bytes=64 * 2**20,
        time_total_s=10.0 + fidelity,
        model_name="tiny-llama",
        task_name="arith",
        backend="hqq",
        quant_settings="{}",
        trial_settings=json.dumps({"lr": 1e-3}),
        lib_versions="{}",
        code_version="0.1.0",
        host="node1",
        device="cpu",
        started_at="2025-01-31T12:00:00Z",
        finished_at="2025-01-31T12:05:00Z",
        run_id="r1",
    )


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture
def good_table(tmp_path) -> ResultsTable:
    table = ResultsTable(tmp_path / "table")
    table.append([make_row("a", s, f) for s in (0, 1, 2) for f in (100, 200)])
    table.append([make_row("b", 0, 100)])
    return table


def test_info_and_validate_on_a_good_table(good_table, cli):
    code, out, err = cli(["table", "info", str(good_table.path)])
    assert code == 0 and err == ""
    assert "rows: 7 ok, 0 failed" in out
    assert "configs: 2 distinct with ok rows, 1 with >= 3 seeds" in out
    assert good_table.content_hash() in out

    code, out, err = cli(["table", "validate", str(good_table.path)])
    assert code == 0 and err == ""
    assert out.strip() == f"OK: 2 parts, 7 rows (7 after dedupe), hash {good_table.content_hash()}"


def test_validate_a_single_part_file(good_table, cli):
    part = good_table.part_paths()[0]
    code, out, _ = cli(["table", "validate", str(part)])
    assert code == 0 and out.startswith("OK: 1 parts, 6 rows")


@pytest.mark.parametrize("command", ["info", "validate"])
def test_corrupt_table_exits_2_with_one_line_and_is_left_unchanged(good_table, cli, command):
    (good_table.path / "part-x.parquet").write_bytes(b"\x00garbage" * 64)
    before = snapshot(good_table.path)
    code, out, err = cli(["table", command, str(good_table.path)])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("qra-bench: error: ") and "part-x.parquet: not a Parquet file or truncated" in err
    assert snapshot(good_table.path) == before


@pytest.mark.parametrize("command", ["info", "validate"])
def test_missing_table_exits_2_and_creates_nothing(tmp_path, cli, command):
    missing = tmp_path / "nowhere"
    code, _, err = cli(["table", command, str(missing)])
    assert code == 2
    assert err == f"qra-bench: error: no table at {missing}\n"
    assert not missing.exists()
