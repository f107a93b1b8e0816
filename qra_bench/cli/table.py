"""``qra-bench table ...``: inspect, validate, describe and compact results tables."""

from __future__ import annotations


import typer


__all__ = ["table_compact", "table_info", "table_report", "table_validate"]


def table_info(path: str = typer.Argument(..., help="Table directory (Parquet part files).")) -> None:
    """Counts per fidelity, seeds, memory range and the content hash of a table."""
    from qra_bench.table import ResultsTable

    typer.echo(ResultsTable(path).info())


def table_validate(path: str = typer.Argument(..., help="Table directory or a single Parquet part file.")) -> None:
    """Check every part file against the schema; exit non-zero on the first bad one."""
    from qra_bench.table import ResultsTable

    typer.echo(ResultsTable(path).validate())


def table_report(
    path: str = typer.Argument(..., help="Table directory (Parquet part files)."),
    recipe: str = typer.Option(
        "",
        help="How the table was collected (Markdown), written into the card (default: keep the card's current text).",
    ),
) -> None:
    """Write TABLE.md beside the table: counts, seeds, anchors, memory range, identities, CPU hours, hash."""
    from qra_bench.table_report import write_card

    typer.echo(f"wrote {write_card(path, recipe)}")


def table_compact(
    table: str = typer.Option(..., help="Table directory to compact."),
    out: str = typer.Option(..., help="Output FILE.parquet, or a directory that receives one part file."),
) -> None:
    """Write a table as one Parquet file with the same content hash (for distribution)."""
    from qra_bench.table import ResultsTable
    from qra_bench.table_compact import compact_table

    path = compact_table(table, out)
    typer.echo(f"wrote {path} (hash {ResultsTable(path).content_hash()})")
