"""The results table: schema, validation on append, crash-safe parts, dedupe, content hash, corrupt parts."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qra_bench.errors import TableError
from qra_bench.table import (
    COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    ResultsTable,
    TrialRow,
    rows_to_table,
    schema_markdown,
)

REPO = Path(__file__).resolve().parent.parent


def make_row(config: str = "cfg-a", seed: int = 0, fidelity: int = 100, /, **overrides) -> TrialRow:
    """A complete ok row; ``overrides`` replace any column."""
    values = dict(
        config_hash=config,
        bits=(4, 2, 8),
        ranks=(8, 0, 16),
        n_blocks=3,
        avg_bits=4.5,
        avg_rank=8.0,
        seed=seed,
        fidelity=fidelity,
        fidelity_frac=fidelity / 400,
        max_steps=400,
        status="ok",
        eval_loss=1.25 + seed / 10 + fidelity / 1000,
        accuracy=0.5,
        lm_loss=3.0,
        train_loss=1.1,
        extra_metrics=json.dumps({"perplexity": 3.49}),
        proxy_eval_loss=2.0,
        proxy_accuracy=0.25,
        proxy_lm_loss=3.5,
        proxy_recon_error=0.07,
        mem_predicted_bytes=120 * 2**20,
        mem_predicted_weights_bytes=40 * 2**20,
        mem_breakdown=json.dumps({"weights": 40 * 2**20, "activations": 80 * 2**20}),
        mem_measured_param_bytes=41 * 2**20,
        mem_peak_rss_bytes=900 * 2**20,
        mem_cuda_peak_bytes=None,
        time_quantize_s=1.5,
        time_proxy_s=0.5,
        time_train_s=fidelity * 0.1,
        time_eval_s=0.25,
        time_total_s=2.25 + fidelity * 0.1,
        tokens_per_s=5000.0,
        model_name="tiny-llama",
        model_sha256="ab" * 32,
        task_name="arith",
        task_data_sha256="cd" * 32,
        backend="hqq",
        quant_settings=json.dumps({"group_size": 64}),
        trial_settings=json.dumps({"lr": 1e-3}),
        lib_versions=json.dumps({"torch": "2.13.0"}),
        code_version="0.1.0",
        host="node1",
        device="cpu",
        started_at="2025-01-31T12:00:00+00:00",
        finished_at=f"2025-01-31T12:{fidelity // 100:02d}:00+00:00",
        run_id="run-1",
    )
    values.update(overrides)
    return TrialRow(**values)


def failed_row(config: str = "cfg-a", seed: int = 0, fidelity: int = 100, /, **overrides) -> TrialRow:
    values = dict(status="failed", error="RuntimeError: out of memory", eval_loss=None, accuracy=None)
    values.update(overrides)
    return make_row(config, seed, fidelity, **values)


def grid_rows() -> list[TrialRow]:
    return [make_row(c, s, f) for c in ("cfg-a", "cfg-b") for s in (0, 1, 2) for f in (100, 200)]


def file_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


# ------------------------------------------------------------------------------------------- schema, rows


def test_trial_row_fields_are_the_schema_columns_in_order_with_none_defaults_for_nullable():
    row_fields = dataclasses.fields(TrialRow)
    assert [f.name for f in row_fields] == SCHEMA.names
    for field in row_fields:
        nullable = SCHEMA.field(field.name).nullable
        assert (field.default is None) == nullable or field.name == "schema_version", field.name
    assert SCHEMA.metadata == {b"qra_bench_schema": str(SCHEMA_VERSION).encode()}


def test_rows_to_table_conforms_to_schema_and_converts_lists_and_numpy_scalars():
    import numpy as np

    row = make_row(bits=[4, 2, 8], seed=np.int64(3), avg_bits=np.float32(4.5))
    assert row.bits == (4, 2, 8)
    table = rows_to_table([row])
    assert table.schema.equals(SCHEMA, check_metadata=True)
    assert table.column("seed").to_pylist() == [3]


@pytest.mark.parametrize(
    "overrides, column",
    [
        ({"status": "done"}, "status"),
        ({"eval_loss": None}, "eval_loss"),
        ({"eval_loss": math.nan}, "eval_loss"),
        ({"eval_loss": math.inf}, "eval_loss"),
        ({"bits": (4, 300, 8)}, "bits"),
        ({"seed": True}, "seed"),
        ({"seed": "0"}, "seed"),
        ({"accuracy": "high"}, "accuracy"),
        ({"model_name": None}, "model_name"),
        ({"n_blocks": 4}, "n_blocks"),
        ({"fidelity": 500}, "fidelity"),
        ({"finished_at": "2025-01-31T12:00:00"}, "finished_at"),
        ({"finished_at": "2025-01-31T13:00:00+01:00"}, "finished_at"),
        ({"extra_metrics": "{not json"}, "extra_metrics"),
        ({"quant_settings": "[1, 2]"}, "quant_settings"),
        ({"schema_version": 2}, "schema_version"),
    ],
)
def test_append_rejects_a_bad_row_naming_the_column_and_writes_nothing(tmp_path, overrides, column):
    table = ResultsTable(tmp_path / "t")
    with pytest.raises(TableError, match=rf"row 1 \(config cfg-b.*\): {column} "):
        table.append([make_row(), make_row("cfg-b", **overrides)])
    assert not table.exists


def test_failed_rows_need_an_error_message_but_no_metrics(tmp_path):
    table = ResultsTable(tmp_path / "t")
    with pytest.raises(TableError, match="error is empty"):
        table.append([failed_row(error=None)])
    table.append([failed_row()])
    assert len(table.read(include_failed=True)) == 1


# ------------------------------------------------------------------------------------- write, round trip


def test_append_then_read_round_trips_every_value(tmp_path):
    rows = grid_rows() + [make_row("cfg-c", accuracy=None, model_sha256=None, mem_cuda_peak_bytes=2**33)]
    table = ResultsTable(tmp_path / "t")
    table.append(rows[:5])
    table.append(rows[5:])
    frame = table.read()
    assert len(frame) == len(rows)
    back = {(r.config_hash, r.seed, r.fidelity): r for r in map(TrialRow.from_dict, frame.to_dict("records"))}
    for row in rows:
        assert back[(row.config_hash, row.seed, row.fidelity)] == row
    assert frame["bits"].iloc[0] == (4, 2, 8)
    assert str(frame["mem_cuda_peak_bytes"].dtype) == "Int64"
    assert frame["seed"].dtype == "int64"
    assert list(frame[["config_hash", "seed", "fidelity"]].itertuples(index=False, name=None)) == sorted(back)


def test_append_leaves_only_complete_named_parts_and_never_touches_existing_ones(tmp_path):
    table = ResultsTable(tmp_path / "new" / "t")
    first = table.append(grid_rows()[:3])
    assert re.fullmatch(r"part-\d{8}T\d{12}Z-[0-9a-f]{32}\.parquet", first.name)
    before = file_bytes(first.parent)
    second = table.append(grid_rows()[3:])
    after = file_bytes(first.parent)
    assert sorted(after) == sorted([first.name, second.name])  # no temporary files left behind
    assert after[first.name] == before[first.name]
    assert pq.ParquetFile(second).metadata.row_group(0).column(0).compression == "ZSTD"
    assert table.n_parts == 2


def test_a_temporary_dotfile_left_by_a_crash_is_ignored(tmp_path):
    table = ResultsTable(tmp_path)
    part = table.append(grid_rows())
    (tmp_path / f".{part.name.replace('part-2', 'part-3')}.tmp").write_bytes(part.read_bytes()[:100])
    assert table.n_parts == 1
    assert len(table.read()) == len(grid_rows())
    assert table.validate().startswith("OK: 1 parts, 12 rows")


# ------------------------------------------------------------------------------------------------ dedupe


def test_dedupe_prefers_ok_over_failed_then_earliest_finished(tmp_path):
    table = ResultsTable(tmp_path)
    table.append(
        [
            failed_row("a", finished_at="2025-01-01T00:00:00Z"),
            make_row("b", eval_loss=2.0, finished_at="2025-01-02T00:00:00Z"),
            failed_row("c", finished_at="2025-01-02T00:00:00Z"),
        ]
    )
    table.append(
        [
            make_row("a", eval_loss=1.0, finished_at="2025-01-03T00:00:00Z"),
            make_row("b", eval_loss=3.0, finished_at="2025-01-01T00:00:00+00:00"),
            failed_row("c", error="second failure", finished_at="2025-01-01T00:00:00Z"),
        ]
    )
    ok = table.read()
    assert list(ok["config_hash"]) == ["a", "b"]
    assert list(ok["eval_loss"]) == [1.0, 3.0]
    everything = table.read(include_failed=True)
    assert list(everything["config_hash"]) == ["a", "b", "c"]
    assert everything.set_index("config_hash").loc["c", "error"] == "second failure"
    assert len(table.read(dedupe=False)) == 3
    assert len(table.read(dedupe=False, include_failed=True)) == 6
    assert table.keys() == {("a", 0, 100), ("b", 0, 100)}


def test_keys_of_a_table_not_yet_written_is_empty(tmp_path):
    assert ResultsTable(tmp_path / "missing").keys() == set()


# ---------------------------------------------------------------------------------------------- content hash


def test_content_hash_ignores_part_split_and_row_order(tmp_path):
    rows = grid_rows() + [failed_row("cfg-z")]
    one, two = ResultsTable(tmp_path / "one"), ResultsTable(tmp_path / "two")
    one.append(rows[:4])
    one.append(rows[4:])
    two.append(list(reversed(rows[7:])))
    two.append(rows[2:7][::-1])
    two.append(rows[:2])
    two.append(rows[:3])  # an exact duplicate changes nothing after dedupe
    assert one.content_hash() == two.content_hash()
    assert re.fullmatch(r"[0-9a-f]{64}", one.content_hash())


@pytest.mark.parametrize(
    "change",
    [
        {"accuracy": 0.5 + 1e-12},
        {"host": "node2"},
        {"bits": (4, 2, 4)},
        {"mem_cuda_peak_bytes": 1},
        {"extra_metrics": "{}"},
    ],
)
def test_content_hash_changes_when_any_value_changes(tmp_path, change):
    rows = grid_rows()
    base, changed = ResultsTable(tmp_path / "base"), ResultsTable(tmp_path / "changed")
    base.append(rows)
    changed.append(rows[:-1] + [dataclasses.replace(rows[-1], **change)])
    assert base.content_hash() != changed.content_hash()


# ----------------------------------------------------------------------------------- corrupt and foreign parts


def test_corrupt_part_raises_naming_the_file_and_leaves_other_files_untouched(tmp_path):
    table = ResultsTable(tmp_path)
    table.append(grid_rows())
    bad = tmp_path / "part-x.parquet"
    bad.write_bytes(b"this is not parquet at all" * 10)
    before = file_bytes(tmp_path)
    for call in (table.read, table.validate, table.info, table.content_hash, table.keys):
        with pytest.raises(TableError, match=r"part-x\.parquet: not a Parquet file or truncated"):
            call()
    assert file_bytes(tmp_path) == before


def test_a_part_damaged_after_it_was_read_is_read_again_not_served_from_the_cache(tmp_path):
    table = ResultsTable(tmp_path)
    part = table.append(grid_rows())
    assert len(table.read()) == len(grid_rows())
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    with pytest.raises(TableError, match="not a Parquet file or truncated"):
        table.read()


def test_a_part_replaced_in_place_by_other_rows_is_read_again(tmp_path):
    table = ResultsTable(tmp_path / "t")
    part = table.append([make_row("cfg-a", 0, 100)])
    first = table.content_hash()
    other = ResultsTable(tmp_path / "other").append([make_row("cfg-b", 0, 100)])
    other.replace(part)  # same name, new file: another inode and mtime
    assert table.content_hash() != first and set(table.read()["config_hash"]) == {"cfg-b"}


def test_truncated_part_raises(tmp_path):
    part = ResultsTable(tmp_path / "good").append(grid_rows())
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / part.name).write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    with pytest.raises(TableError, match="not a Parquet file or truncated"):
        ResultsTable(tmp_path / "bad").read()


def test_foreign_schema_part_raises_listing_missing_and_unexpected_columns(tmp_path):
    ResultsTable(tmp_path).append(grid_rows())
    pq.write_table(pa.table({"config_hash": ["a"], "loss": [1.0]}), tmp_path / "part-foreign.parquet")
    with pytest.raises(
        TableError,
        match=r"part-foreign\.parquet: foreign schema: missing columns bits, ranks.*"
        r"unexpected columns loss",
    ):
        ResultsTable(tmp_path).validate()


def test_part_of_another_schema_version_or_type_raises(tmp_path):
    table = rows_to_table(grid_rows())
    pq.write_table(table.replace_schema_metadata({"qra_bench_schema": "2"}), tmp_path / "part-v2.parquet")
    with pytest.raises(TableError, match=r"part-v2\.parquet: schema version 2"):
        ResultsTable(tmp_path / "part-v2.parquet").validate()
    retyped = table.set_column(table.schema.get_field_index("seed"), "seed", table.column("seed").cast(pa.int32()))
    pq.write_table(retyped, tmp_path / "part-int32.parquet")
    with pytest.raises(TableError, match=r"wrong types: seed is int32, expected int64"):
        ResultsTable(tmp_path / "part-int32.parquet").validate()


def test_part_whose_data_breaks_the_rules_raises(tmp_path):
    table = rows_to_table(grid_rows())
    status = pa.array(["ok"] * (table.num_rows - 1) + ["weird"])
    pq.write_table(
        table.set_column(table.schema.get_field_index("status"), SCHEMA.field("status"), status),
        tmp_path / "part-status.parquet",
    )
    with pytest.raises(TableError, match=r"status has values 'weird'"):
        ResultsTable(tmp_path / "part-status.parquet").read()


def test_missing_path_raises_no_table(tmp_path):
    for call in ("read", "validate", "info", "content_hash"):
        with pytest.raises(TableError, match="no table at .*nowhere"):
            getattr(ResultsTable(tmp_path / "nowhere"), call)()
    assert ResultsTable(tmp_path / "nowhere").n_parts == 0


# ------------------------------------------------------------------------------------------ validate, info


def test_validate_accepts_a_directory_or_a_single_part(tmp_path):
    table = ResultsTable(tmp_path)
    part = table.append(grid_rows()[:6])
    table.append(grid_rows()[4:])
    assert table.validate() == f"OK: 2 parts, 14 rows (12 after dedupe), hash {table.content_hash()}"
    assert ResultsTable(part).validate().startswith("OK: 1 parts, 6 rows")
    with pytest.raises(TableError, match="not a directory"):
        ResultsTable(part).append(grid_rows())


def test_info_summarizes_counts_memory_time_and_hash(tmp_path):
    table = ResultsTable(tmp_path)
    table.append(grid_rows() + [failed_row("cfg-z", time_total_s=3600.0)])
    info = table.info()
    assert "rows: 12 ok, 1 failed" in info
    assert "configs: 2 distinct with ok rows, 2 with >= 3 seeds" in info
    assert "seeds: 3 (0, 1, 2)" in info
    assert "ok rows per fidelity (steps): 100: 6, 200: 6" in info
    assert "memory predicted: 120.0 - 120.0 MiB" in info
    # 6 trials of 22.25 s (their largest checkpoint) plus the failed hour
    assert f"time spent: {(6 * 22.25 + 3600) / 3600:.2f} h" in info
    assert "models: tiny-llama" in info and "tasks: arith" in info
    assert info.endswith(f"content hash: {table.content_hash()}")


def test_empty_table_directory_reads_as_empty(tmp_path):
    table = ResultsTable(tmp_path)
    frame = table.read()
    assert list(frame.columns) == SCHEMA.names and len(frame) == 0
    assert table.validate().startswith("OK: 0 parts, 0 rows")
    assert "rows: 0 ok, 0 failed" in table.info()


def test_schema_document_lists_every_column():
    document = (REPO / "docs" / "schema.md").read_text()
    assert schema_markdown() in document
    assert len(COLUMNS) == len(SCHEMA) == 48


@pytest.mark.parametrize("code, name", [(28, "ENOSPC"), (30, "EROFS"), (13, "EACCES")])
def test_a_failed_write_is_one_line_naming_the_cause_and_adds_nothing(tmp_path, monkeypatch, code, name):
    import os

    from qra_bench.table import TableWriteError

    table = ResultsTable(tmp_path / "t")
    table.append([make_row("cfg-a")])
    before = file_bytes(table.path)
    real_open = open

    def failing_open(file, mode="r", *args, **kwargs):
        if "x" in mode:
            raise OSError(code, os.strerror(code), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", failing_open)
    with pytest.raises(TableWriteError, match=rf"\({name}\); no part was added") as info:
        table.append([make_row("cfg-b")])
    monkeypatch.undo()
    assert "\n" not in str(info.value) and str(table.path) in str(info.value)
    assert file_bytes(table.path) == before and len(table.read()) == 1


def test_a_table_directory_that_cannot_be_created_is_a_write_error(tmp_path, monkeypatch):
    from pathlib import Path as _Path

    from qra_bench.table import TableWriteError

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(_Path, "mkdir", refuse)
    with pytest.raises(TableWriteError, match=r"Permission denied \(EACCES\)"):
        ResultsTable(tmp_path / "new").append([make_row()])
    monkeypatch.undo()
    assert not (tmp_path / "new").exists()
