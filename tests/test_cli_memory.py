"""`qra-bench memory`: the itemized report, and one-line errors with exit status 2."""

import pytest

from qra_bench.cli import main
from qra_bench.memory import TERMS


def run(capsys, *args):
    """Run the CLI; return (exit status, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_uniform_4bit_budget_prints_every_term(capsys):
    code, out, err = run(capsys, "memory", "--arch", "llama-3.1-8b", "--budget", "uniform-4bit")
    assert code == 0, err
    for name in TERMS + ("total", "weights_and_adapters", "reference M(C) formula"):
        assert name in out
    assert "uniform-4bit = " in out
    assert "bits 4 on all 32 blocks" in out and "ranks 16 on all 32 blocks" in out
    assert "3,791,650,816" in out  # weights and adapters = the method's M(C) for uniform 4-bit, rank 16


def test_per_block_bits_and_ranks_with_budget_verdict(capsys):
    code, out, err = run(capsys, "memory", "--bits", "2,3,4,8,16,4,4,4", "--ranks", "8", "--budget", "1GiB")
    assert code == 0, err
    assert "bits 2,3,4,8,16,4,4,4" in out and "configuration fits" in out


def test_absolute_budget_shows_a_repaired_configuration(capsys):
    code, out, err = run(capsys, "memory", "--arch", "smollm2-135m", "--budget", "300MiB", "--grad-checkpointing")
    assert code == 0, err
    assert "repaired to fit" in out and "total" in out


def test_list_presets(capsys):
    code, out, _ = run(capsys, "memory", "--list")
    assert code == 0
    assert "llama-3.1-8b" in out and "qwen2.5-3b" in out and "tiny" in out


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--bits", "4,4,4"], "has 3 values; give 1 (all blocks) or 8"),
        (["--bits", "5"], "bit width 5 (block 0) not in the bit ladder {2, 3, 4, 8, 16}"),
        (["--ranks", "32"], "rank 32 (block 0) not in the rank ladder {4, 8, 16}"),
        (["--bits", "four"], "cannot parse bits 'four'"),
        (["--budget", "-1GiB"], "budget '-1GiB' must be positive"),
        (["--budget", "nan"], "budget 'nan' must be positive and finite"),
        (["--budget", "lots"], "cannot parse budget 'lots'; allowed: uniform-<b>bit"),
        (["--arch", "gpt-5"], "unknown architecture 'gpt-5'"),
        (["--backend", "gguf"], "unknown backend 'gguf'"),
        (["--backend", "bnb", "--bits", "2"], "bit width 2 (block 0) not in the bit ladder {4, 8, 16}"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, args, fragment):
    code, out, err = run(capsys, "memory", *args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("qra-bench: error: ")
    assert fragment in err
