"""Compact a results table into one Parquet file for distribution.

A table grows as one part file per trial; a compacted table is a single Parquet file holding the deduplicated
rows (failed ones included), in key order, with the same schema and schema metadata. Its content hash equals
the source table's, so surrogates bound to the table accept it, and :class:`~qra_bench.table.ResultsTable`
reads it as it is (a single part file), or as a table directory when the file is written into one.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Union

__all__ = ["compact_table"]

PathLike = Union[str, "os.PathLike[str]"]


def compact_table(table: PathLike, out: PathLike) -> Path:
    """Write the table at ``table`` as one Parquet file; return its path.

    Parameters
    ----------
    table
        A table directory (or an already compacted file).
    out
        A file path ending in ``.parquet``, or a directory (created if needed) that receives one
        ``part-<UTC time>-<uuid>.parquet``, i.e. a one-part table directory.

    Returns
    -------
    Path
        The file written. Raises :class:`~qra_bench.errors.TableError` when the written file's content hash
        differs from the source's (the file is then removed).
    """
    import pyarrow.parquet as pq

    from qra_bench.errors import TableError
    from qra_bench.table import SCHEMA, ResultsTable

    source = ResultsTable(table)
    raw, _ = source._read_raw()
    rows = ResultsTable._select(raw, dedupe=True, include_failed=True)
    expected = source.content_hash()
    target = Path(out)
    if target.suffix != ".parquet":
        target.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        target = target / f"part-{stamp}-{uuid.uuid4().hex}.parquet"
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        raise TableError(f"{target} exists; compacting never overwrites a file")
    temporary = target.with_name(f".{target.name}.tmp")
    try:
        with open(temporary, "xb") as handle:
            pq.write_table(rows.replace_schema_metadata(SCHEMA.metadata), handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    actual = ResultsTable(target).content_hash()
    if actual != expected:
        target.unlink()
        raise TableError(f"compacted {table} to a file with hash {actual}, not the table's {expected}")
    return target
