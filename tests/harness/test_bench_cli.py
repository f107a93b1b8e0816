"""`qra-bench bench`: a run through the command line, and one-line errors with exit status 2."""

from __future__ import annotations

from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "my_optimizer.py"


def test_bench_command_writes_the_leaderboard_and_prints_it(cli, table_path, surrogate_path, tmp_path):
    code, out, err = cli(
        [
            "bench",
            "--benchmark",
            str(table_path),
            "--surrogate",
            str(surrogate_path),
            "--optimizers",
            "hill-climb,random",
            "--plugin",
            str(EXAMPLE),
            "--seeds",
            "0-2",
            "--budgets",
            "uniform-4bit",
            "--max-cost",
            "20m",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0, err
    assert "# Leaderboard: standin-bench, backend surrogate" in out and "| hill-climb |" in out
    assert (tmp_path / "curves_cost.csv").is_file() and (tmp_path / "anytime_evals_uniform-4bit.png").is_file()


def test_an_unknown_benchmark_is_one_line_and_exit_2(cli, tmp_path):
    code, out, err = cli(["bench", "--benchmark", "no-such-bench", "--out", str(tmp_path)])
    assert code == 2
    assert err.startswith("qra-bench: error: unknown benchmark 'no-such-bench'") and "available:" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_bad_options_are_one_line_errors(cli, table_path, surrogate_path, tmp_path):
    common = ["bench", "--benchmark", str(table_path), "--surrogate", str(surrogate_path), "--out", str(tmp_path)]
    for extra, message in (
        (["--max-cost", "2 hours"], "cannot parse duration"),
        (["--backend", "tabel"], "unknown backend 'tabel'"),
        (["--optimizers", "randon"], "unknown optimizer(s) 'randon'"),
        (["--budgets", "0.1xfp16-lora"], "below its smallest configuration"),
        (["--backend", "table", "--optimizers", "random"], "pool-based"),
    ):
        code, _, err = cli(common + extra)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (extra, err)
