"""``qra-bench collect`` with the trial options beside the recipe: lm-eval scoring at every checkpoint
(``--eval``, ``--eval-limit``, ``--eval-metric``) and gradient checkpointing; their one-line errors before any
table file; a resume that would score other lm-eval tasks is refused.

The real collection is one configuration x one seed of the tiny model on news, 4 steps with one checkpoint,
scored on 8 documents of a shipped offline lm-eval task.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from qra_bench.cli import main
from qra_bench.errors import QRBenchError
from qra_bench.recipe import TrialOptions, check_lm_eval
from qra_bench.table import ResultsTable


def collect_args(out: Path, design: Path, *extra: str) -> list[str]:
    return [
        "collect",
        "--out",
        str(out),
        "--model",
        "tiny",
        "--task",
        "news",
        "--design",
        "file",
        "--design-file",
        str(design),
        "--no-anchors",
        "--steps",
        "4",
        "--fidelities",
        "1.0",
        "--threads",
        "1",
        "--no-progress",
        *extra,
    ]


@pytest.fixture(scope="module")
def scored_table(tmp_path_factory) -> tuple[Path, Path]:
    """(table, design file) of one collection scored by lm-eval on qra_news_topic, with gradient checkpointing."""
    tmp = tmp_path_factory.mktemp("collect-eval")
    design = tmp / "design.jsonl"
    design.write_text(json.dumps({"bits": [4] * 8, "ranks": [8] * 8}) + "\n")
    out = tmp / "table"
    main(
        collect_args(out, design, "--eval", "qra_news_topic", "--eval-limit", "8", "--grad-checkpointing")
    )  # exits only on an error
    return out, design


def test_collect_scores_every_row_with_the_lm_eval_tasks_and_records_grad_checkpointing(scored_table):
    out, _ = scored_table
    frame = ResultsTable(out).read()
    assert len(frame) == 1 and (frame["status"] == "ok").all() and list(frame["fidelity"]) == [4]
    extra = json.loads(frame["extra_metrics"].iloc[0])
    assert set(extra["lm_eval"]) == {"qra_news_topic"}
    assert extra["lm_eval"]["qra_news_topic"] * 8 == round(extra["lm_eval"]["qra_news_topic"] * 8)  # 8 documents
    assert frame["accuracy"].iloc[0] == pytest.approx(extra["lm_eval_mean"])
    assert extra["lm_eval_mean"] == pytest.approx(extra["lm_eval"]["qra_news_topic"])
    assert extra["lm_eval_setup"]["settings"]["limit"] == 8 and 0.0 <= extra["task_accuracy"] <= 1.0
    assert extra["grad_checkpointing"] is True


def test_rerun_with_the_same_eval_options_resumes_without_running_anything(scored_table, cli):
    out, design = scored_table
    parts = set(ResultsTable(out).part_paths())
    code, stdout, _ = cli(collect_args(out, design, "--eval", "qra_news_topic", "--eval-limit", "8"))
    assert code == 0 and "0 done" in stdout and "1 skipped" in stdout
    assert set(ResultsTable(out).part_paths()) == parts


@pytest.mark.parametrize(
    "eval_args, message",
    [
        (
            ["--eval", "qra_news_cloze"],
            "scored with lm-eval tasks ['qra_news_topic']; this run scores ['qra_news_cloze']",
        ),
        ([], "scored with lm-eval tasks ['qra_news_topic']; this run scores none"),
    ],
)
def test_resume_with_other_lm_eval_tasks_is_refused_in_one_line(scored_table, cli, eval_args, message):
    out, design = scored_table
    parts = set(ResultsTable(out).part_paths())
    code, stdout, stderr = cli(collect_args(out, design, *eval_args))
    assert code == 2 and stdout == ""
    assert stderr.startswith("qra-bench: error: ") and len(stderr.splitlines()) == 1
    assert message in stderr and "Use another --out" in stderr
    assert set(ResultsTable(out).part_paths()) == parts


@pytest.mark.parametrize(
    "args, message",
    [
        (["--eval", "no_such_task_anywhere"], "unknown lm-eval task(s) ['no_such_task_anywhere']"),
        (["--eval", "qra_news_topic", "--eval-metric", "bad"], "lm-eval metric 'bad': choose acc or acc_norm"),
        (["--eval", "qra_news_topic", "--eval-limit", "0"], "lm-eval limit 0 must be >= 1"),
    ],
)
def test_bad_eval_options_exit_2_in_one_line_and_create_no_table(tmp_path, cli, args, message):
    out = tmp_path / "table"
    code, stdout, stderr = cli(["collect", "--out", str(out), "--no-progress", *args])
    assert code == 2 and stdout == ""
    assert stderr.startswith("qra-bench: error: ") and message in stderr and len(stderr.splitlines()) == 1
    assert not out.exists()


def test_trial_options_are_picklable_and_resolve_the_rows_task_names():
    import pandas as pd

    options = TrialOptions("shipped", 5, "acc_norm", True)
    assert pickle.loads(pickle.dumps(options)) == options
    assert options.check() == ("qra_news_cloze", "qra_news_headline", "qra_news_topic")
    assert TrialOptions().check() == ()
    # failed rows and rows of an unscored table: only ok rows count, and a table without lm-eval needs a run without
    frame = pd.DataFrame(
        {
            "status": ["ok", "failed"],
            "extra_metrics": [json.dumps({"attempt": 1}), json.dumps({"lm_eval": {"qra_news_topic": 0.5}})],
        }
    )
    check_lm_eval(frame, None, table="t")
    check_lm_eval(frame, TrialOptions(grad_checkpointing=True), table="t")
    with pytest.raises(QRBenchError, match="rows scored with lm-eval tasks none; this run scores"):
        check_lm_eval(frame, options, table="t")


def test_live_trials_on_a_scored_table_score_as_its_rows_did(scored_table):
    from qra_bench.harness import Benchmark
    from qra_bench.recipe import recorded_options

    table, _ = scored_table
    frame = ResultsTable(table).read()
    expected = TrialOptions(eval_tasks="qra_news_topic", eval_limit=8, eval_metric="acc", grad_checkpointing=True)
    assert recorded_options(frame) == expected
    bench = Benchmark.load(str(table), backend="table+live", budget="fp16-lora")
    assert bench._live.trials.options == expected  # what the live backend hands every live trial
    plain = frame.assign(extra_metrics=None)
    assert recorded_options(plain) is None
