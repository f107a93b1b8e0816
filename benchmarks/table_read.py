"""Results-table read speed: a table of one part per trial read cold, read again in the same process (parts
unchanged since the first read are served from the process's cache), and read as one compacted part.

Every read is a full :meth:`ResultsTable.read` plus :meth:`ResultsTable.content_hash` (what listing a scenario
costs), and all three must give the same hash. A table is re-read by every scenario listing, card, claim and
live answer, so the re-read is what a long process pays; a fresh process (a CLI call, a test's subprocess)
pays the cold read, or the compacted one on a table shipped compacted. Run::

    .venv/bin/python benchmarks/table_read.py --table datasets_cache/tables/tiny-news
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TABLE = REPO / "datasets_cache" / "tables" / "tiny-news"


def _timed_read(path: Path) -> tuple[float, str]:
    from qra_bench.table import ResultsTable

    start = time.perf_counter()
    table = ResultsTable(path)
    table.read()
    digest = table.content_hash()
    return time.perf_counter() - start, digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=str(DEFAULT_TABLE), help="table directory (default: %(default)s)")
    parser.add_argument("--parts", type=int, default=0, help="read only the first N parts (0: all)")
    parser.add_argument("--quick", action="store_true", help="the first 60 parts only")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from qra_bench.table import ResultsTable, clear_read_cache
    from qra_bench.table_compact import compact_table

    n = 60 if args.quick else args.parts
    parts = ResultsTable(args.table).part_paths()[: n or None]
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "parts"
        source.mkdir()
        for part in parts:  # a copy: the reads below must not find the parts in this process's cache yet
            (source / part.name).write_bytes(part.read_bytes())
        clear_read_cache()
        cold, h_cold = _timed_read(source)
        warm, h_warm = _timed_read(source)
        compact_table(source, Path(tmp) / "compact")
        clear_read_cache()
        compacted, h_compact = _timed_read(Path(tmp) / "compact")
    if not h_cold == h_warm == h_compact:
        print("content hashes differ between the reads", file=sys.stderr)
        return 1
    print(f"table {args.table}: {len(parts)} parts, content hash {h_cold[:16]}")
    print(f"cold read + hash:          {cold:8.3f} s")
    print(f"re-read (parts cached):    {warm:8.3f} s  ({cold / warm:6.1f}x faster)")
    print(f"compacted, cold:           {compacted:8.3f} s  ({cold / compacted:6.1f}x faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
