"""Instruction data through ``datasets`` (task ``sft:SOURCE``): format, masking, subsample, hashes, bad data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qra_bench.cli import main
from qra_bench.errors import QRBenchError
from qra_bench.tasks import load_task
from qra_bench.tasks.sft import IGNORE, SHIPPED, SFTSpec, alpaca_prompt


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from qra_bench.models.tiny import TINY_DIR

    return AutoTokenizer.from_pretrained(TINY_DIR)


def one_error_line(err: str) -> str:
    """The single ``qra-bench: error:`` line of a failed command's stderr (progress bars aside), no traceback."""
    lines = [line for line in err.splitlines() if "qra-bench: error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _records(n: int) -> list[dict]:
    return [
        {"instruction": f"Name the number {i}.", "input": "" if i % 2 else f"It is {i}.", "output": f"number {i}"}
        for i in range(n)
    ]


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_prompt_format_is_alpaca():
    with_input = alpaca_prompt("Do it.", "context")
    assert with_input.endswith("### Instruction:\nDo it.\n\n### Input:\ncontext\n\n### Response:\n")
    assert alpaca_prompt("Do it.", "  ").endswith("### Instruction:\nDo it.\n\n### Response:\n")
    assert "### Input" not in alpaca_prompt("Do it.")


def test_spec_options_and_errors():
    spec = SFTSpec.parse("sft:data.jsonl?max_len=64&loss=all&n=10&eval_n=3")
    assert (spec.source, spec.max_len, spec.loss, spec.n, spec.eval_n) == ("data.jsonl", 64, "all", 10, 3)
    for bad in ("sft:", "sft:x.jsonl?loss=prompt", "sft:x.jsonl?max_len=big", "sft:x.jsonl?colour=red", "sft:x?n=0"):
        with pytest.raises(QRBenchError):
            SFTSpec.parse(bad)


def test_response_only_labels_and_whole_sequence_option(tmp_path, tokenizer):
    path = _write_jsonl(tmp_path / "d.jsonl", _records(20))
    task = load_task(f"sft:{path}?eval_n=4", tokenizer)
    assert task.kind == "sft" and len(task.train_prompts) == 16 and len(task.eval_prompts) == 4
    for ids, labels, n in zip(task.train_prompts, task.train_labels, task.train_lengths):
        targets = labels[:n][labels[:n] != IGNORE]
        # the targets are exactly the response tokens plus EOS, at the end of the sequence
        assert 0 < len(targets) < n and np.array_equal(targets, ids[n - len(targets) : n])
        assert targets[-1] == tokenizer.eos_token_id and (labels[n:] == IGNORE).all()
    whole = load_task(f"sft:{path}?eval_n=4&loss=all", tokenizer)
    n0 = whole.train_lengths[0]
    assert np.array_equal(whole.train_labels[0, :n0], whole.train_prompts[0, :n0])
    assert whole.sha256 != task.sha256  # the options are part of the data identity


def test_truncation_keeps_response_header(tmp_path, tokenizer):
    long = [
        {"instruction": "Summarize. " + "word " * 300, "input": "", "output": "short answer " * 40} for _ in range(6)
    ]
    path = _write_jsonl(tmp_path / "long.jsonl", long)
    task = load_task(f"sft:{path}?eval_n=2&max_len=64", tokenizer)
    assert task.train_prompts.shape[1] == 64 and (task.train_lengths == 64).all()
    header = tokenizer("### Response:\n", add_special_tokens=False)["input_ids"]
    first = task.train_prompts[0].tolist()
    start = next(i for i, t in enumerate(task.train_labels[0]) if t != IGNORE)
    assert first[start - len(header) : start] == header  # the prompt lost its start, not its end
    assert 0 < 64 - start <= 32  # the response keeps up to max_len - min(prompt, max_len // 2) tokens


def test_subsample_is_deterministic_and_order_free(tmp_path, tokenizer):
    recs = _records(40)
    a = load_task(f"sft:{_write_jsonl(tmp_path / 'a.jsonl', recs)}?n=8&eval_n=5", tokenizer)
    b = load_task(f"sft:{_write_jsonl(tmp_path / 'b.jsonl', recs[::-1])}?n=8&eval_n=5", tokenizer)
    assert len(a.train_prompts) == 8
    rows = lambda t: sorted(map(tuple, t.train_prompts.tolist()))
    assert rows(a) == rows(b) and sorted(map(tuple, a.eval_prompts.tolist())) == sorted(
        map(tuple, b.eval_prompts.tolist())
    )
    again = load_task(f"sft:{tmp_path / 'a.jsonl'}?n=8&eval_n=5", tokenizer)
    assert again.sha256 == a.sha256
    changed = recs[:-1] + [{**recs[-1], "output": "something else"}]
    other = load_task(f"sft:{_write_jsonl(tmp_path / 'c.jsonl', changed)}?n=8&eval_n=5", tokenizer)
    assert other.sha256 != a.sha256


def test_parquet_and_response_column(tmp_path, tokenizer):
    frame = pd.DataFrame(
        [{"instruction": r["instruction"], "input": r["input"], "response": r["output"]} for r in _records(12)]
    )
    frame.to_parquet(tmp_path / "d.parquet")
    task = load_task(f"sft:{tmp_path / 'd.parquet'}?eval_n=2", tokenizer)
    assert len(task.train_prompts) == 10


def test_shipped_file_loads_and_rebuilds_identically(tokenizer):
    task = load_task("sft:news-alpaca?n=32&eval_n=8", tokenizer)
    assert len(task.train_prompts) == 32 and "news-alpaca" in task.description
    assert sum(1 for _ in open(SHIPPED["news-alpaca"])) == 800
    from qra_bench.tasks.build_data import main as build

    assert build(["--check"]) == 0


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"prompt": "a", "completion": "b"}\n' * 5, "Alpaca format needs instruction"),
        ("", "holds no records|cannot load sft data"),
        ("not json at all {{{\n", "cannot load sft data"),
    ],
)
def test_bad_data_is_one_line_exit_2_nothing_written(tmp_path, capsys, content, message):
    import re

    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    out = tmp_path / "table"
    with pytest.raises(SystemExit) as exc:
        main(["trial", "--model", "tiny", "--task", f"sft:{path}", "--steps", "1", "--out", str(out)])
    assert exc.value.code == 2
    err = one_error_line(capsys.readouterr().err)
    assert re.search(message, err), err
    assert not out.exists()


def test_missing_file_is_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["trial", "--model", "tiny", "--task", f"sft:{tmp_path / 'nope.jsonl'}", "--steps", "1"])
    assert exc.value.code == 2
    assert "does not exist" in one_error_line(capsys.readouterr().err)


def test_collect_runs_sft_and_refuses_bad_data_before_writing(tmp_path, capsys):
    from qra_bench.table import ResultsTable

    bad = _write_jsonl(tmp_path / "bad.jsonl", [{"instruction": "x"}] * 5)
    out = tmp_path / "bad-table"
    with pytest.raises(SystemExit) as exc:
        main(
            ["collect", "--model", "tiny", "--task", f"sft:{bad}", "--design", "random", "--n", "1", "--out", str(out)]
        )
    assert exc.value.code == 2 and "Alpaca format needs instruction" in one_error_line(capsys.readouterr().err)
    assert not out.exists()
    good = tmp_path / "table"
    task = "sft:news-alpaca?n=16&eval_n=4&max_len=128"
    main(
        [
            "collect",
            "--model",
            "tiny",
            "--task",
            task,
            "--design",
            "random",
            "--n",
            "1",
            "--no-anchors",
            "--steps",
            "2",
            "--fidelities",
            "1.0",
            "--workers",
            "1",
            "--threads",
            "1",
            "--no-progress",
            "--out",
            str(good),
        ]
    )
    frame = ResultsTable(good).read()
    assert len(frame) == 1 and frame["status"].iloc[0] == "ok" and frame["task_name"].iloc[0] == task
    assert frame["eval_loss"].iloc[0] > 0 and len(frame["task_data_sha256"].iloc[0]) == 64
