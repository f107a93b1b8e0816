"""The ``qra-bench`` command (``qra_bench.cli:main``), one module per command group.

:mod:`~qra_bench.cli.app` builds the command tree and runs it; :mod:`~qra_bench.cli.options` parses the
options the commands share; the commands are in :mod:`~qra_bench.cli.memory`, :mod:`~qra_bench.cli.table`,
:mod:`~qra_bench.cli.collect` (prepare, trial, collect), :mod:`~qra_bench.cli.fit`,
:mod:`~qra_bench.cli.search` (search, sweep), :mod:`~qra_bench.cli.bench` (bench, run, scenarios) and
:mod:`~qra_bench.cli.reproduce`.
"""

from qra_bench.cli.app import app, main
from qra_bench.cli.options import int_list

__all__ = ["app", "int_list", "main"]
