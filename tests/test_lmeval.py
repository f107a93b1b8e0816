"""lm-eval scoring of the live model: the LM wrapper's numbers, shipped offline tasks, the trial hook, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_sft import one_error_line

from qra_bench.cli import main
from qra_bench.errors import QRBenchError
from qra_bench.tasks.lmeval import (
    SHIPPED_DIR,
    SHIPPED_TASKS,
    LmEvalScorer,
    LmEvalSettings,
    make_lm,
    parse_eval_tasks,
)


class _Req:
    def __init__(self, *args) -> None:
        self.args = args


@pytest.fixture(scope="module")
def tiny():
    from qra_bench.models import load_base

    torch.set_num_threads(1)
    return load_base("tiny")


def _direct_loglikelihood(model, tokenizer, context: str, continuation: str) -> tuple[float, bool]:
    """One unpadded forward pass over context + continuation (the reference the batched wrapper must match)."""
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    cont = tokenizer(context + continuation, add_special_tokens=False)["input_ids"][len(ctx) :]
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)[len(ctx) - 1 :]
    target = torch.tensor(cont)
    return float(logp.gather(-1, target[:, None]).sum()), bool((logp.argmax(-1) == target).all())


def test_loglikelihood_matches_unbatched_forward(tiny):
    lm = make_lm(tiny.model, tiny.tokenizer, torch.device("cpu"), batch_size=3)
    pairs = [
        ("The government said on Monday that", " it would cut taxes."),
        ("Shares in the company rose", " sharply."),
        ("A", " b c d e f g h i j k l m n o p"),
        ("Topic:", " sport"),
        ("The film won", " an award at the festival in Berlin last week."),
        # choices of one context: scored through the shared context's KV cache
        ("The film won", " nothing."),
        ("The film won", " a prize"),
        ("Shares in the company rose", " 5%."),
    ]
    got = lm.loglikelihood([_Req(c, x) for c, x in pairs])
    for (c, x), (ll, greedy) in zip(pairs, got):
        want_ll, want_greedy = _direct_loglikelihood(tiny.model, tiny.tokenizer, c, x)
        assert ll == pytest.approx(want_ll, abs=1e-3) and greedy == want_greedy
        assert ll < 0


def test_rolling_loglikelihood_is_the_sum_over_tokens(tiny):
    lm = make_lm(tiny.model, tiny.tokenizer, torch.device("cpu"))
    text = "The minister said the economy grew faster than expected in the last quarter."
    (got,) = lm.loglikelihood_rolling([_Req(text)])
    ids = [lm.prefix_id] + tiny.tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(tiny.model(input_ids=torch.tensor([ids])).logits[0, :-1], dim=-1)
    want = float(logp.gather(-1, torch.tensor(ids[1:])[:, None]).sum())
    assert got == pytest.approx(want, abs=1e-3)


def test_shipped_tasks_are_package_data():
    assert SHIPPED_TASKS == ("qra_news_cloze", "qra_news_headline", "qra_news_topic")
    for name in SHIPPED_TASKS:
        assert (SHIPPED_DIR / f"{name}.yaml").is_file() and (SHIPPED_DIR / f"{name}.jsonl").is_file()
    assert parse_eval_tasks("shipped") == SHIPPED_TASKS


def test_scorer_on_shipped_and_user_yaml_tasks(tiny, tmp_path):
    # a user task: YAML beside its data, data_files relative to the YAML
    lines = (SHIPPED_DIR / "qra_news_topic.jsonl").read_text().splitlines()[:6]
    (tmp_path / "mine.jsonl").write_text("\n".join(lines) + "\n")
    yaml_text = (SHIPPED_DIR / "qra_news_topic.yaml").read_text()
    yaml_text = yaml_text.replace("task: qra_news_topic", "task: my_topic").replace(
        "test: qra_news_topic.jsonl", "test: mine.jsonl"
    )
    (tmp_path / "mine.yaml").write_text(yaml_text)
    scorer = LmEvalScorer(
        LmEvalSettings(tasks=("qra_news_topic", str(tmp_path / "mine.yaml")), limit=6), tiny.tokenizer
    )
    scores = scorer(tiny.model, torch.device("cpu"))
    assert set(scores) == {"qra_news_topic", "my_topic"}
    # the same six documents, scored through two task definitions, give the same accuracy
    assert scores["my_topic"] == scores["qra_news_topic"]
    # the base model learnt the topic format in pretraining: well above the 1-in-5 chance on these documents
    assert scores["qra_news_topic"] >= 0.5
    info = scorer.describe()
    assert info["lm_eval_version"] == "0.4.13" and len(info["task_data_sha256"]["qra_news_topic"]) == 64


def test_unknown_tasks_are_user_errors(tiny, tmp_path):
    with pytest.raises(QRBenchError, match="does not exist"):
        LmEvalScorer(LmEvalSettings(tasks=(str(tmp_path / "none.yaml"),)), tiny.tokenizer)
    with pytest.raises(QRBenchError, match="acc or acc_norm"):
        LmEvalScorer(LmEvalSettings(tasks=("qra_news_topic",), metric="f1"), tiny.tokenizer)


def test_cli_unknown_lm_eval_task_exit_2_nothing_written(tmp_path, capsys):
    out = tmp_path / "table"
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "trial",
                "--model",
                "tiny",
                "--task",
                "sft:news-alpaca?n=8&eval_n=2",
                "--steps",
                "1",
                "--eval",
                "qra_news_topic,no_such_task_anywhere",
                "--out",
                str(out),
            ]
        )
    assert exc.value.code == 2
    assert "unknown lm-eval task(s) ['no_such_task_anywhere']" in one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_fine_tune_on_local_alpaca_file_scored_by_lm_eval(tmp_path, capsys):
    """Acceptance: tiny fine-tuned on a local Alpaca file loaded by datasets, scored by lm-eval on shipped tasks;
    per-task accuracies and their mean land in the results table."""
    from qra_bench.table import ResultsTable

    source = [
        json.loads(x)
        for x in (Path(__file__).resolve().parent.parent / "qra_bench/tasks/data/news_alpaca.jsonl")
        .read_text()
        .splitlines()[:40]
    ]
    data = tmp_path / "alpaca.json"  # a JSON array file: another format datasets reads
    data.write_text(json.dumps(source))
    out = tmp_path / "table"
    main(
        [
            "trial",
            "--model",
            "tiny",
            "--task",
            f"sft:{data}?eval_n=8&max_len=192",
            "--bits",
            "4",
            "--ranks",
            "8",
            "--steps",
            "2",
            "--threads",
            "1",
            "--eval",
            "qra_news_topic,qra_news_cloze",
            "--eval-limit",
            "5",
            "--out",
            str(out),
        ]
    )
    assert "lm-eval:" in capsys.readouterr().out
    frame = ResultsTable(out).read()
    assert len(frame) == 2 and (frame["status"] == "ok").all()
    for _, row in frame.iterrows():
        extra = json.loads(row["extra_metrics"])
        scores = extra["lm_eval"]
        assert set(scores) == {"qra_news_topic", "qra_news_cloze"}
        assert all(0.0 <= v <= 1.0 and v * 5 == round(v * 5) for v in scores.values())  # 5 examples per task
        assert row["accuracy"] == pytest.approx(sum(scores.values()) / 2)
        assert 0.0 <= extra["task_accuracy"] <= 1.0 and extra["lm_eval_setup"]["settings"]["limit"] == 5
        assert row["task_name"].startswith("sft:") and len(row["task_data_sha256"]) == 64
        assert row["eval_loss"] > 0 and row["train_loss"] > 0


def test_gradient_checkpointing_trains_the_same_model(tiny):
    """Recomputing activations changes memory, not the numbers; the memory model charges less for it."""
    from dataclasses import replace

    from qra_bench.space import SearchSpace
    from qra_bench.tasks import load_task
    from qra_bench.trial import TrialSettings, run_trial
    from qra_bench.trial_extras import TrialExtras

    task = load_task("sft:news-alpaca?n=8&eval_n=2&max_len=96", tiny.tokenizer)
    settings = replace(
        TrialSettings(), max_steps=2, fidelities=(1.0,), batch_size=2, lora=replace(TrialSettings().lora, dropout=0.0)
    )
    cfg = SearchSpace(8).uniform(16, 8)
    plain = run_trial(tiny, task, cfg, 0, settings).final
    ckpt = run_trial(tiny, task, cfg, 0, settings, TrialExtras(grad_checkpointing=True)).final
    assert ckpt.train_loss == pytest.approx(plain.train_loss, rel=1e-4)
    assert ckpt.eval_loss == pytest.approx(plain.eval_loss, rel=1e-4)
    assert json.loads(ckpt.extra_metrics)["grad_checkpointing"] is True
    assert ckpt.mem_predicted_bytes < plain.mem_predicted_bytes


def test_empty_context_is_scored_after_the_prefix_token(tiny):
    lm = make_lm(tiny.model, tiny.tokenizer, torch.device("cpu"))
    ((got, _),) = lm.loglikelihood([_Req("", "The market fell.")])
    ids = [lm.prefix_id] + tiny.tokenizer("The market fell.", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(tiny.model(input_ids=torch.tensor([ids])).logits[0, :-1], dim=-1)
    assert got == pytest.approx(float(logp.gather(-1, torch.tensor(ids[1:])[:, None]).sum()), abs=1e-3)
