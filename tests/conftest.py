"""Fixtures shared by every test directory."""

import pytest

from qra_bench.cli import main


@pytest.fixture
def cli(capsys):
    """Run ``qra-bench ARGS`` in-process; return (exit status, stdout, stderr)."""

    def run(args: list[str]) -> tuple[int, str, str]:
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
