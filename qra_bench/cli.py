"""The ``qra-bench`` command.

Each command parses its options, calls one function of the pipeline stage it belongs to, and prints the
result. User mistakes raise :class:`~qra_bench.errors.QRBenchError`; :func:`main` turns them (and click's
usage errors) into one line on stderr and exit status 2, without a traceback.
"""

from __future__ import annotations

import sys
from typing import Optional

import click
import typer

from qra_bench.errors import QRBenchError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])
table_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Inspect and validate results tables.")
app.add_typer(table_app, name="table")


@app.command()
def memory(
    arch: str = typer.Option("tiny", help="Preset name (see `qra-bench memory --list`) or path to a config JSON."),
    bits: Optional[str] = typer.Option(None, help="Comma-separated bits per block, or one value for all blocks."),
    ranks: Optional[str] = typer.Option(None, help="Comma-separated LoRA ranks per block, or one value for all."),
    budget: Optional[str] = typer.Option(None, help="Named or absolute budget: uniform-4bit, fp16-lora, 0.5xfp16-lora, 3.5GiB."),
    backend: str = typer.Option("hqq", help="Quantization layout: formula, hqq, torchao, bnb."),
    group_size: int = typer.Option(128, help="Quantization group size (weights per scale/zero pair)."),
    batch_size: int = typer.Option(1, help="Training batch size (sequences), for the activation term."),
    seq_len: int = typer.Option(512, help="Training sequence length (tokens), for the activation term."),
    grad_checkpointing: bool = typer.Option(False, help="Activations under gradient checkpointing."),
    list_presets: bool = typer.Option(False, "--list", help="List the shipped architecture presets and exit."),
) -> None:
    """Print the itemized memory (bytes) of a configuration or of a named budget."""
    from qra_bench.memory import memory_report

    typer.echo(
        memory_report(
            arch=arch, bits=bits, ranks=ranks, budget=budget, backend=backend, group_size=group_size,
            batch_size=batch_size, seq_len=seq_len, grad_checkpointing=grad_checkpointing, list_presets=list_presets,
        )
    )


@table_app.command("info")
def table_info(path: str = typer.Argument(..., help="Table directory (Parquet part files).")) -> None:
    """Counts per fidelity, seeds, memory range and the content hash of a table."""
    from qra_bench.table import ResultsTable

    typer.echo(ResultsTable(path).info())


@table_app.command("validate")
def table_validate(path: str = typer.Argument(..., help="Table directory or a single Parquet part file.")) -> None:
    """Check every part file against the schema; exit non-zero on the first bad one."""
    from qra_bench.table import ResultsTable

    typer.echo(ResultsTable(path).validate())


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: run the app, printing user errors as one line and exiting with status 2."""
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="qra-bench", standalone_mode=False)
    except QRBenchError as exc:
        print(f"qra-bench: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except click.exceptions.Abort:
        print("qra-bench: aborted", file=sys.stderr)
        sys.exit(130)
    except click.exceptions.ClickException as exc:
        print(f"qra-bench: error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code or 2)


if __name__ == "__main__":
    main()
