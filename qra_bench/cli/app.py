"""The ``qra-bench`` command tree and its entry point :func:`main`.

Each command parses its options, calls one function of the pipeline stage it belongs to, and prints the
result; the commands live in the modules of this package, one per command group, and are registered here in
the order ``qra-bench --help`` lists them. User mistakes raise :class:`~qra_bench.errors.QRBenchError`;
:func:`main` turns them (and click's usage errors) into one line on stderr and exit status 2, without a
traceback.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Optional, Union

import click
import typer

from qra_bench.cli.bench import bench, run, scenarios
from qra_bench.cli.collect import collect, prepare, trial
from qra_bench.cli.fit import fit
from qra_bench.cli.memory import memory
from qra_bench.cli.reproduce import reproduce_table1
from qra_bench.cli.search import search, sweep
from qra_bench.cli.table import table_compact, table_info, table_report, table_validate
from qra_bench.errors import QRBenchError

if TYPE_CHECKING:
    from typer._click.exceptions import ClickException as TyperClickException

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="qra-bench: per-block quantization bits and LoRA ranks under a memory budget.",
)
table_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Inspect and validate results tables.")
app.add_typer(table_app, name="table")
reproduce_app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Reproduce the paper's tables on real LLMs."
)
app.add_typer(reproduce_app, name="reproduce")

app.command()(memory)
app.command()(prepare)
app.command()(trial)
app.command()(collect)
app.command()(fit)
app.command()(search)
app.command()(sweep)
app.command()(bench)
app.command()(run)
app.command()(scenarios)
table_app.command("info")(table_info)
table_app.command("validate")(table_validate)
table_app.command("report")(table_report)
table_app.command("compact")(table_compact)
reproduce_app.command("table1")(reproduce_table1)


def _click_errors() -> tuple[Union[type[click.exceptions.ClickException], type[TyperClickException]], ...]:
    """Usage errors of click and of the click that typer vendors (a missing option raises the latter)."""
    try:
        from typer._click.exceptions import ClickException as TyperClickException
    except ImportError:
        return (click.exceptions.ClickException,)
    return (click.exceptions.ClickException, TyperClickException)


_CLICK_ERRORS = _click_errors()


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: run the app, printing user errors as one line and exiting with status 2."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="qra-bench", standalone_mode=False)
    except QRBenchError as exc:
        print(f"qra-bench: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except click.exceptions.Abort:
        print("qra-bench: aborted", file=sys.stderr)
        sys.exit(130)
    except _CLICK_ERRORS as exc:
        print(f"qra-bench: error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code or 2)
    if isinstance(code, int) and code:  # a command's typer.Exit(code); click returns it in non-standalone mode
        sys.exit(code)
