"""``qra-bench reproduce table1`` end to end on the embedded model, its errors, and the GPU check's CPU exit."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from test_sft import one_error_line

from qra_bench.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY_ARGS = [
    "--model",
    "tiny",
    "--sft",
    "sft:news-alpaca?n=16&eval_n=4&max_len=128",
    "--eval",
    "qra_news_topic,qra_news_cloze",
    "--eval-limit",
    "4",
    "--steps",
    "2",
    "--batch-size",
    "4",
    "--uniform-bits",
    "2,4",
    "--uniform-ranks",
    "16",
    "--promote",
    "1",
    "--threads",
    "1",
]


def test_table1_on_tiny_writes_the_paper_layout(tmp_path, capsys):
    out = tmp_path / "t1"
    main(["reproduce", "table1", *TINY_ARGS, "--out", str(out)])
    assert json.loads((out / "reproduce.json").read_text())["wall_s"] > 0  # its time is recorded, not asserted
    md = (out / "table1.md").read_text()
    assert "| Method | AvgBit | AvgRank | Mem (GB) | qra_news_cloze | qra_news_topic | Avg |" in md
    assert "| 16x8 | 16x8 | n/a (CPU) |" in md  # the 16-bit row's per-block vectors, run-length
    frame = pd.read_csv(out / "table1.csv")
    methods = list(frame["Method"])
    assert methods[:2] == ["LoRA (16-bit, r16)", "QLoRA (4-bit, r16)"] and methods[3] == "AutoQRA"
    assert methods[2].startswith("Best uniform (") and len(frame) == 4
    # Avg is the mean of the per-task accuracies, each a multiple of 1/4 (4 examples per task)
    for _, r in frame.iterrows():
        assert r["Avg"] == pytest.approx((r["qra_news_cloze"] + r["qra_news_topic"]) / 2)
        assert (r["qra_news_topic"] * 4) == round(r["qra_news_topic"] * 4)
    assert list(frame["AvgBit"][:2]) == [16.0, 4.0] and list(frame["AvgRank"][:2]) == [16.0, 16.0]
    assert frame["Mem (GB)"][0] > frame["Mem (GB)"][1]  # 16-bit weights cost more than 4-bit ones
    # the best uniform and AutoQRA rows fit the budget (uniform-4bit), 16-bit LoRA does not
    assert list(frame["fits_budget"]) == [False, True, True, True]
    # every row's provenance points at a row of the trials table
    trials = pd.read_parquet(out / "trials")
    assert set(frame["run_id"]) <= set(trials["run_id"])
    assert set(frame["config_hash"]) <= set(trials["config_hash"])
    record = json.loads((out / "reproduce.json").read_text())
    assert record["n_trials"] == len(trials) and record["device"] == "cpu"
    assert (out / "surrogate" / "manifest.json").is_file()


def test_model_directory_without_config_exit_2_nothing_written(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"\0" * 16)
    out = tmp_path / "t1"
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "table1", "--model", str(model), "--out", str(out)])
    assert exc.value.code == 2
    assert "has no config.json" in one_error_line(capsys.readouterr().err)
    assert not out.exists()
    with pytest.raises(SystemExit) as exc:  # the same through `trial`
        main(["trial", "--model", str(model), "--out", str(out)])
    assert exc.value.code == 2 and not out.exists()


def test_reproduce_bad_inputs_write_nothing(tmp_path, capsys):
    out = tmp_path / "t1"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "a", "answer": "b"}\n' * 4)
    for args, message in (
        (["--sft", f"sft:{bad}"], "Alpaca format needs instruction"),
        (["--eval", str(tmp_path / "none.yaml")], "does not exist"),
        (["--uniform-bits", "5"], "off the ladders"),
    ):
        with pytest.raises(SystemExit) as exc:
            main(["reproduce", "table1", "--model", "tiny", *args, "--out", str(out)])
        assert exc.value.code == 2
        assert message in one_error_line(capsys.readouterr().err)
        assert not out.exists()


def test_gpu_check_without_cuda_says_so_and_runs_nothing(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": str(ROOT / ".venv" / "bin" / "python")}
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "no CUDA device visible to torch" in proc.stderr and "nothing run" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_gpu_check_program_compiles_and_its_imports_resolve():
    """The CUDA-only Python part of gpu_check.sh cannot run here; it must at least compile and import."""
    text = (ROOT / "benchmarks" / "gpu_check.sh").read_text()
    program = text.split("<<'PY'", 1)[1].split("\n", 1)[1].split("\nPY\n", 1)[0]
    compile(program, "gpu_check.py", "exec")
    imports = "\n".join(line for line in program.splitlines() if line.startswith(("import ", "from ")))
    exec(compile(imports, "gpu_check_imports.py", "exec"), {})


@pytest.mark.slow
def test_gpu_check_program_runs_on_cpu_with_tiny(tmp_path):
    """ALLOW_CPU=1 runs gpu_check.sh's whole program on the embedded model (about 80 s on 2 busy cores)."""
    env = {
        **os.environ,
        "ALLOW_CPU": "1",
        "MODEL": "tiny",
        "STEPS": "1",
        "EVAL_LIMIT": "2",
        "OMP_NUM_THREADS": "1",
        "PYTHON": str(ROOT / ".venv" / "bin" / "python"),
    }
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "7 of 7 configurations ran" in proc.stdout
    assert len(pd.read_parquet(tmp_path / "out" / "trials")) == 7
