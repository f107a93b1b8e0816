"""The results table: one row per (config, seed, fidelity) of a trial, stored as append-only Parquet parts.

A table is a directory of ``part-<utc timestamp>-<uuid4 hex>.parquet`` files that all follow
:data:`SCHEMA`. Writers only ever add a part; each part is written to a temporary dotfile, fsynced and
renamed into place, so a crash leaves either a complete part or an ignored dotfile, and any number of
workers can append to the same table at once without locks. Readers validate every part against the
schema, then deduplicate by ``(config_hash, seed, fidelity)``.

The schema (:data:`COLUMNS`, :data:`SCHEMA`, :class:`TrialRow` and the rules of rows and parts) lives in
:mod:`qra_bench.table_schema`; its public names are importable from here too.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
import uuid
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence, Union

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from qra_bench.errors import TableError
from qra_bench.table_schema import (  # noqa: F401  (re-exported: the table's public names live here too)
    COLUMNS,
    KEY_COLUMNS,
    PART_GLOB,
    SCHEMA,
    SCHEMA_METADATA_KEY,
    SCHEMA_VERSION,
    STATUSES,
    TrialRow,
    _content_problem,
    _schema_problem,
    rows_to_table,
    schema_markdown,
    validate_rows,
)


class TableWriteError(TableError):
    """A part could not be written (disk full, read-only file system, permission denied); nothing was added."""


def _write_error(path: Path, exc: OSError) -> TableWriteError:
    """One line naming the table, the cause (errno name and text) and that nothing was added."""
    code = errno.errorcode.get(exc.errno or 0, "error")
    reason = exc.strerror or str(exc) or type(exc).__name__
    return TableWriteError(
        f"cannot append to table {path}: {reason} ({code}); no part was added and the existing parts are untouched"
    )


# --------------------------------------------------------------------------------------------------- reading


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


# Checked parts already read in this process, keyed by path and file identity (device, inode, size, mtime in ns):
# parts are immutable once renamed into place, so a key that still matches is the same content, and a part
# replaced or rewritten gets a new key. Tables are re-read often (every scenario listing, card, live answer), and
# reading a part costs far more than the stat that finds it again.
_PART_CACHE: OrderedDict[tuple[str, int, int, int, int], pa.Table] = OrderedDict()
_PART_CACHE_MAX = 50_000
_PART_CACHE_LOCK = threading.Lock()


def clear_read_cache() -> None:
    """Forget every part read so far in this process (the next read of any table is a cold one)."""
    with _PART_CACHE_LOCK:
        _PART_CACHE.clear()


def _read_part(path: Path) -> pa.Table:
    """Read and check one part file (from the cache when it is unchanged); raise :class:`TableError` naming the
    file and what is wrong."""
    try:
        st = path.stat()
    except OSError as exc:
        raise TableError(f"{path}: cannot be read ({_one_line(exc)})") from None
    key = (str(path.absolute()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    with _PART_CACHE_LOCK:
        table = _PART_CACHE.get(key)
        if table is not None:
            _PART_CACHE.move_to_end(key)
            return table
    table = _read_part_file(path)
    with _PART_CACHE_LOCK:
        _PART_CACHE[key] = table
        while len(_PART_CACHE) > _PART_CACHE_MAX:
            _PART_CACHE.popitem(last=False)
    return table


def _read_part_file(path: Path) -> pa.Table:
    try:
        with pq.ParquetFile(path) as parquet:
            problem = _schema_problem(parquet.schema_arrow)
            if problem:
                raise TableError(f"{path}: {problem}")
            table = parquet.read()
    except (pa.ArrowException, OSError) as exc:
        raise TableError(f"{path}: not a Parquet file or truncated ({_one_line(exc)})") from None
    problem = _content_problem(table)
    if problem:
        raise TableError(f"{path}: {problem}")
    # Same names and types, so this only fixes column order, nullability flags and metadata.
    return pa.Table.from_arrays([table.column(name) for name in SCHEMA.names], schema=SCHEMA)


def _canonical_row(row: dict[str, Any]) -> str:
    # json writes floats with repr, which round-trips exactly, and keeps NaN apart from null.
    return json.dumps([row[name] for name in SCHEMA.names], separators=(",", ":"), ensure_ascii=True)


def _sort_by_key(table: pa.Table) -> pa.Table:
    return table.sort_by([(name, "ascending") for name in KEY_COLUMNS])


def _dedupe(table: pa.Table) -> pa.Table:
    """One row per key: an ok row over a failed one, then the earliest ``finished_at``.

    Rows that tie on both are ordered by their full canonical serialization, so the choice (and the
    content hash) never depends on the order in which parts or rows were read.
    """
    if table.num_rows == 0:
        return table
    frame = pd.DataFrame({name: table.column(name).to_pandas() for name in KEY_COLUMNS})
    frame["_failed"] = table.column("status").to_numpy(zero_copy_only=False) != "ok"
    frame["_finished"] = pd.to_datetime(
        table.column("finished_at").to_pandas(),
        utc=True,
        format="ISO8601",
        errors="coerce",
    )
    duplicated = frame.duplicated(list(KEY_COLUMNS), keep=False).to_numpy()
    canonical = [""] * table.num_rows
    if duplicated.any():
        rows = table.filter(pa.array(duplicated)).to_pylist()
        for index, row in zip(duplicated.nonzero()[0], rows):
            canonical[index] = _canonical_row(row)
    frame["_canonical"] = canonical
    frame = frame.sort_values([*KEY_COLUMNS, "_failed", "_finished", "_canonical"], kind="stable", na_position="last")
    keep = frame.drop_duplicates(list(KEY_COLUMNS), keep="first").index.to_numpy()
    return table.take(pa.array(keep))


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    int_dtypes = {pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int64(): pd.Int64Dtype()}
    frame = table.to_pandas(types_mapper=int_dtypes.get)
    for field in SCHEMA:
        if pa.types.is_integer(field.type) and not field.nullable:
            frame[field.name] = frame[field.name].astype(field.type.to_pandas_dtype())
        elif pa.types.is_list(field.type):
            frame[field.name] = pd.Series(
                [tuple(v) for v in table.column(field.name).to_pylist()],
                index=frame.index,
                dtype=object,
            )
    return frame


class ResultsTable:
    """An append-only results table in the directory ``path`` (a single part file is accepted for reading).

    Parameters
    ----------
    path
        The table directory. It is created by the first :meth:`append`; every other method only reads.
    """

    def __init__(self, path: Union[str, os.PathLike]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"ResultsTable({str(self.path)!r})"

    @property
    def exists(self) -> bool:
        """Whether there is a table (directory or part file) at ``path``."""
        return self.path.exists()

    def part_paths(self) -> list[Path]:
        """The part files in name order (oldest first); temporary dotfiles from a crash are not parts."""
        if self.path.is_file():
            return [self.path]
        if not self.path.is_dir():
            raise TableError(f"no table at {self.path}")
        return sorted(p for p in self.path.glob(PART_GLOB) if p.is_file())

    @property
    def n_parts(self) -> int:
        """Number of part files (0 when the table does not exist yet)."""
        return len(self.part_paths()) if self.exists else 0

    # ---------------------------------------------------------------------------------------------- write

    def append(self, rows: Sequence[TrialRow]) -> Path:
        """Validate ``rows`` and write them as one new part file; return its path.

        The part is written to a temporary dotfile in the table directory, fsynced, renamed to its final
        name, and the directory is fsynced, so readers see either the whole part or nothing, even after a
        crash or power loss. Existing parts are never touched.
        """
        rows = list(rows)
        if not rows:
            raise TableError(f"append to {self.path}: no rows to write")
        if self.path.exists() and not self.path.is_dir():
            raise TableError(f"append to {self.path}: not a directory; a table is a directory of part files")
        table = rows_to_table(rows)
        try:
            if not self.path.is_dir():
                self.path.mkdir(parents=True, exist_ok=True)
                _fsync_directory(self.path.parent)  # make the new table directory itself durable
        except OSError as exc:
            raise _write_error(self.path, exc) from None
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"part-{stamp}-{uuid.uuid4().hex}.parquet"
        final = self.path / name
        temporary = self.path / f".{name}.tmp"
        try:
            with open(temporary, "xb") as handle:
                pq.write_table(table, handle, compression="zstd")
                handle.flush()
                os.fsync(handle.fileno())
            if final.exists():  # a uuid4 collision; never overwrite a part
                raise FileExistsError(final)
            os.rename(temporary, final)
        except BaseException as exc:
            try:
                temporary.unlink(missing_ok=True)  # our own temporary file only
            except OSError:
                pass  # e.g. a directory that turned read-only: a dotfile, which readers ignore
            if isinstance(exc, OSError) and not isinstance(exc, FileExistsError):
                raise _write_error(self.path, exc) from None
            if isinstance(exc, pa.ArrowException):  # pyarrow reports a failed write (ENOSPC) as its own error
                raise TableWriteError(
                    f"cannot append to table {self.path}: {_one_line(exc)}; no part was added "
                    "and the existing parts are untouched"
                ) from None
            raise
        _fsync_directory(self.path)
        return final

    # ----------------------------------------------------------------------------------------------- read

    def _read_raw(self) -> tuple[pa.Table, int]:
        """Every row of every part, checked, and the number of parts."""
        parts = self.part_paths()
        tables = [_read_part(path) for path in parts]
        if not tables:
            return SCHEMA.empty_table(), 0
        return pa.concat_tables(tables), len(parts)

    @staticmethod
    def _select(table: pa.Table, dedupe: bool, include_failed: bool) -> pa.Table:
        if dedupe:
            table = _dedupe(table)
        if not include_failed:
            table = table.filter(pc.equal(table.column("status"), "ok"))
        return _sort_by_key(table)

    def read(self, dedupe: bool = True, include_failed: bool = False) -> pd.DataFrame:
        """The table as a DataFrame, one row per ``(config_hash, seed, fidelity)`` when ``dedupe``.

        Deduplication keeps an ok row over a failed one, then the earliest ``finished_at``.
        ``include_failed`` adds the failed rows (after deduplication, only keys that have no ok row).
        Rows are sorted by key; ``bits`` and ``ranks`` are tuples, nullable int columns use pandas'
        nullable dtypes. Raises :class:`TableError` naming the first corrupt or foreign part.
        """
        table, _ = self._read_raw()
        return _to_pandas(self._select(table, dedupe, include_failed))

    def keys(self) -> set[tuple[str, int, int]]:
        """``(config_hash, seed, fidelity)`` of every ok row: what a resumed collection can skip.

        Empty when the table does not exist yet, so a collector can start and resume the same way.
        """
        if not self.exists:
            return set()
        table, _ = self._read_raw()
        ok = table.filter(pc.equal(table.column("status"), "ok"))
        return set(zip(*(ok.column(name).to_pylist() for name in KEY_COLUMNS)))

    def content_hash(self) -> str:
        """SHA-256 (hex) of the deduplicated table, failed rows included.

        Independent of how rows are split into parts and ordered within them; any change of any value
        changes it.
        """
        table, _ = self._read_raw()
        return _hash_table(self._select(table, dedupe=True, include_failed=True))

    def validate(self) -> str:
        """Check every part; return ``"OK: N parts, M rows, hash H"`` or raise :class:`TableError`.

        Parts are checked in name order and the first bad one is reported.
        """
        table, n_parts = self._read_raw()
        deduped = self._select(table, dedupe=True, include_failed=True)
        return (
            f"OK: {n_parts} parts, {table.num_rows} rows ({deduped.num_rows} after dedupe), hash {_hash_table(deduped)}"
        )

    def info(self) -> str:
        """A human summary: rows, configs, seeds, fidelities, memory range (MiB), time spent (hours), hash."""
        raw, n_parts = self._read_raw()
        table = self._select(raw, dedupe=True, include_failed=True)
        frame = _to_pandas(table)
        ok = frame[frame["status"] == "ok"]
        n_failed = int((frame["status"] == "failed").sum())
        lines = [
            f"table: {self.path} ({n_parts} parts, {raw.num_rows} rows before dedupe)",
            f"rows: {len(ok)} ok, {n_failed} failed (one per config, seed, fidelity)",
        ]
        seeds_per_config = ok.groupby("config_hash")["seed"].nunique()
        lines.append(
            f"configs: {ok['config_hash'].nunique()} distinct with ok rows, "
            f"{int((seeds_per_config >= 3).sum())} with >= 3 seeds"
        )
        seeds = sorted(int(s) for s in ok["seed"].unique())
        lines.append(f"seeds: {len(seeds)}" + (f" ({', '.join(map(str, seeds))})" if 0 < len(seeds) <= 10 else ""))
        per_fidelity = ok.groupby("fidelity").size()
        lines.append(
            "ok rows per fidelity (steps): "
            + (", ".join(f"{int(f)}: {int(n)}" for f, n in per_fidelity.items()) or "none")
        )
        for column, label in (
            ("mem_predicted_bytes", "memory predicted"),
            ("mem_measured_param_bytes", "memory measured (params)"),
            ("mem_peak_rss_bytes", "memory peak RSS"),
            ("mem_cuda_peak_bytes", "memory peak CUDA"),
        ):
            values = ok[column].dropna()
            if len(values):
                lines.append(f"{label}: {values.min() / 2**20:.1f} - {values.max() / 2**20:.1f} MiB")
        lines.append(f"time spent: {_hours_spent(raw):.2f} h (sum of time_total_s over trials, failed included)")
        for column, label in (("model_name", "models"), ("task_name", "tasks"), ("backend", "backends")):
            names = sorted(frame[column].dropna().unique())
            lines.append(f"{label}: {', '.join(names) if names else '-'}")
        lines.append(f"content hash: {_hash_table(table)}")
        return "\n".join(lines)


def _hours_spent(raw: pa.Table) -> float:
    """Wall hours of the distinct trials in ``raw`` (all rows, before dedupe: reruns cost time too).

    A trial writes one row per checkpoint with its time so far, so each trial counts with its largest
    ``time_total_s``.
    """
    if raw.num_rows == 0:
        return 0.0
    frame = raw.select(["config_hash", "seed", "max_steps", "run_id", "time_total_s"]).to_pandas()
    per_trial = frame.groupby(["config_hash", "seed", "max_steps", "run_id"])["time_total_s"].max()
    return float(per_trial.sum()) / 3600.0  # NaN (no timing recorded) counts as zero


def _hash_table(table: pa.Table) -> str:
    """SHA-256 over the schema version, the column names and each row's canonical form, in key order."""
    digest = hashlib.sha256()
    digest.update(f"{SCHEMA_METADATA_KEY}={SCHEMA_VERSION}\n{','.join(SCHEMA.names)}\n".encode())
    for row in _sort_by_key(table).to_pylist():
        digest.update(_canonical_row(row).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _fsync_directory(path: Path) -> None:
    """Make a rename in ``path`` durable (POSIX); a no-op where directories cannot be opened."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
