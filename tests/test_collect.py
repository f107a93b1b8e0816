"""The collector: designs (deterministic, anchors first, memory bins covered, file errors), resume, failures
and retries across restarts, Ctrl-C, and a Dask LocalCluster whose workers write into one table.

End-to-end tests run real trials (max_steps=2, fidelities 0.5 and 1.0) on a 2-block LLaMA with the tiny
checkpoint's tokenizer, so one trial costs seconds, not the tiny model's full evaluation.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from qra_bench.arch import load_arch
from qra_bench.collect import (
    ANCHOR_BITS,
    DESIGNS,
    CollectSpec,
    anchor_configs,
    collect,
    collect_space,
    file_design,
    importance_design,
    make_design,
    memory_bins,
    random_design,
    space_filling_design,
    stratified_design,
)
from qra_bench.errors import QRBenchError
from qra_bench.memory import MemoryModel, MemorySettings
from qra_bench.table import ResultsTable

REPO = Path(__file__).resolve().parent.parent
TINY = load_arch("tiny")
SPACE = collect_space(TINY, "torchao")
MEMORY = MemoryModel(TINY, MemorySettings(backend="torchao"), SPACE)


def design(name: str, n: int, seed: int, **kwargs):
    extra = dict(memory_model=MEMORY) if name == "stratified" else {}
    if name == "importance":
        extra = dict(importance_q=np.linspace(0, 1, 8), importance_r=np.linspace(1, 0, 8))
    return make_design(name, SPACE, n, seed, **extra, **kwargs)


# ---------------------------------------------------------------------------------------------- designs


def test_anchors_are_every_uniform_bit_width_times_every_rank():
    anchors = anchor_configs(SPACE)
    assert len(anchors) == len(ANCHOR_BITS) * len(SPACE.ranks) == 15
    assert {(c.bits[0], c.ranks[0]) for c in anchors} == {(b, r) for b in ANCHOR_BITS for r in SPACE.ranks}
    assert all(len(set(c.bits)) == 1 and len(set(c.ranks)) == 1 for c in anchors)
    # A backend that cannot store 2 or 3 bits has fewer anchors, all on its ladder.
    bnb = collect_space(TINY, "bnb")
    assert {c.bits[0] for c in anchor_configs(bnb)} == {4, 8, 16}


@pytest.mark.parametrize("name", ["random", "stratified", "space-filling", "importance"])
def test_designs_are_deterministic_distinct_valid_and_start_with_the_anchors(name):
    first = design(name, 60, seed=3)
    assert first == design(name, 60, seed=3)
    assert first != design(name, 60, seed=4)
    assert len(first) == 60 and len({c.hash for c in first}) == 60
    assert first[:15] == anchor_configs(SPACE)
    for cfg in first:
        SPACE.validate(cfg)
    without = design(name, 20, seed=3, anchors=False)
    assert len(without) == 20 and not {c.hash for c in without[:15]} >= {c.hash for c in anchor_configs(SPACE)}


def test_n_below_the_anchor_count_is_a_user_error_naming_both():
    with pytest.raises(QRBenchError, match=r"n=5 is less than the 15 anchor"):
        random_design(SPACE, 5, 0)
    assert len(random_design(SPACE, 5, 0, anchors=False)) == 5


def test_stratified_design_covers_every_memory_bin_evenly_and_uniform_4bit_densely():
    n = 215
    configs = stratified_design(SPACE, MEMORY, n, seed=0)[15:]
    totals = np.array([MEMORY.total_bytes(c) for c in configs])
    focus, main = memory_bins(MEMORY)
    per_main = [int(b.contains(totals).sum()) for b in main]
    assert sum(per_main) == len(configs)  # the main bins partition the space's memory range
    assert min(per_main) >= 0.75 * 0.75 * 200 / len(main)  # 75 % of the quota lands in the main bins
    for b in focus:  # the two narrow bins around uniform-4bit get their 25 share each
        assert int(b.contains(totals).sum()) >= 25
    # Uniform sampling would leave the extreme bins almost empty.
    uniform = np.array([MEMORY.total_bytes(c) for c in random_design(SPACE, n, 0)[15:]])
    assert min(int(b.contains(uniform).sum()) for b in main) < min(per_main) / 3


def test_space_filling_design_spreads_every_block_over_its_rungs():
    configs = space_filling_design(SPACE, 100, seed=0, anchors=False)
    bit_idx = np.stack([SPACE.bit_index(c) for c in configs])
    rank_idx = np.stack([SPACE.rank_index(c) for c in configs])
    for idx, k in ((bit_idx, len(SPACE.bits)), (rank_idx, len(SPACE.ranks))):
        counts = np.stack([np.bincount(col, minlength=k) for col in idx.T])
        assert counts.min() >= 100 // k - 1 and counts.max() <= -(-100 // k) + 1  # Latin hypercube strata


def test_importance_design_gives_important_blocks_higher_rungs():
    configs = importance_design(
        SPACE, 300, 0, importance_q=np.arange(8), importance_r=np.arange(8)[::-1], anchors=False
    )
    bits = np.stack([SPACE.bit_index(c) for c in configs]).mean(axis=0)
    ranks = np.stack([SPACE.rank_index(c) for c in configs]).mean(axis=0)
    assert np.all(np.diff(bits) > -0.15) and bits[-1] - bits[0] > 1.0
    assert np.all(np.diff(ranks) < 0.15) and ranks[0] - ranks[-1] > 0.7


def test_file_design_reads_json_lines_and_csv_in_order_without_duplicates(tmp_path):
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(
        '# two configs\n{"bits": 4, "ranks": 8}\n\n{"bits": [2,3,4,8,16,4,4,4], "ranks": "4,4,4,4,16,16,16,16"}\n'
        '{"bits": 4, "ranks": [8], "note": "a duplicate"}\n'
    )
    got = file_design(SPACE, jsonl, anchors=False)
    assert [c.bits for c in got] == [(4,) * 8, (2, 3, 4, 8, 16, 4, 4, 4)]
    assert got[1].ranks == (4, 4, 4, 4, 16, 16, 16, 16)
    csv_file = tmp_path / "d.csv"
    csv_file.write_text('bits,ranks\n"4,4,4,4,4,4,4,4",8\n2 2 2 2 16 16 16 16,4\n2;2;2;2;16;16;16;16,4\n')
    got_csv = file_design(SPACE, csv_file)
    assert got_csv[:15] == anchor_configs(SPACE)
    assert [c.bits for c in got_csv[15:]] == [(2, 2, 2, 2, 16, 16, 16, 16)]  # uniform 4-bit rank 8 is an anchor


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("a.jsonl", '{"bits": 4, "ranks": 8}\n{"bits": 4, "ranks": 8\n', r"a\.jsonl:2: not a JSON object"),
        ("a.jsonl", '{"bits": 4}\n', r"a\.jsonl:1: needs an object with keys 'bits' and 'ranks'"),
        (
            "a.jsonl",
            '{"bits": 4, "ranks": 8}\n\n{"bits": 5, "ranks": 8}\n',
            r"a\.jsonl:3: bit width 5 .* not in the bit ladder",
        ),
        ("a.jsonl", '{"bits": [4, 4], "ranks": 8}\n', r"a\.jsonl:1: configuration has 2 bit widths"),
        ("a.csv", "bits\n4\n", r"a\.csv: a CSV design needs a header with 'bits' and 'ranks'"),
        ("a.csv", "bits,ranks\n4,8\n4,x\n", r"a\.csv:3: cannot parse ranks 'x'"),
        ("a.csv", "# nothing\n", r"a\.csv: a CSV design needs a header"),
        ("a.jsonl", "\n# only a comment\n", r"a\.jsonl: no configurations"),
    ],
)
def test_file_design_errors_name_the_file_and_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(QRBenchError, match=message):
        file_design(SPACE, path)


def test_make_design_rejects_unknown_names_and_missing_inputs(tmp_path):
    with pytest.raises(QRBenchError, match=r"unknown design 'sobol'; choose one of stratified, random"):
        make_design("sobol", SPACE, 20)
    with pytest.raises(QRBenchError, match="needs importances"):
        make_design("importance", SPACE, 20)
    with pytest.raises(QRBenchError, match="needs a file"):
        make_design("file", SPACE, 20)
    with pytest.raises(QRBenchError, match="needs a memory model"):
        make_design("stratified", SPACE, 20)
    assert make_design("anchors", SPACE, 1) == anchor_configs(SPACE)
    assert set(DESIGNS) == {"stratified", "random", "space-filling", "importance", "file", "anchors"}


def test_a_learning_rate_given_on_the_command_line_replaces_only_the_recipes_learning_rate():
    from dataclasses import replace

    from qra_bench.cli.options import trial_settings as _trial_settings

    default = _trial_settings(None, "torchao", 128, 1)
    assert _trial_settings(None, "torchao", 128, 1, 7e-4) == replace(default, lr=7e-4)
    assert default.lr == 1e-3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--design", "sobol"], "unknown design 'sobol'"),
        (["--executor", "ray"], "unknown executor 'ray'; choose one of local, dask"),
        (["--seeds", "0,a"], "cannot parse seeds '0,a'"),
        (["--fidelities", "0.5,2"], "fidelities '0.5,2' must be fractions in (0, 1]"),
        (["--lr", "0"], "learning rate 0.0 must lie in (0, 1)"),
        (["--address", "tcp://x:1"], "--address is a dask scheduler address; it needs --executor dask"),
        (["--design", "random", "--n", "3"], "n=3 is less than the 15 anchor configurations"),
        (["--model", "nope"], "unknown model 'nope'"),
    ],
)
def test_cli_user_errors_are_one_line_and_write_nothing(tmp_path, cli, args, message):
    out = tmp_path / "table"
    code, stdout, stderr = cli(["collect", "--out", str(out), "--no-progress", *args])
    assert code == 2 and stdout == ""
    assert stderr.startswith("qra-bench: error: ") and message in stderr and len(stderr.splitlines()) == 1
    assert not out.exists()


# ----------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="session")
def small_model(tmp_path_factory) -> str:
    """A 2-block LLaMA (hidden 128, group size 128 divides every input) with the tiny model's tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from qra_bench.models.tiny import TINY_DIR

    if not (TINY_DIR / "tokenizer.json").exists():
        pytest.skip(f"the tiny checkpoint's tokenizer is missing under {TINY_DIR}")
    tokenizer = AutoTokenizer.from_pretrained(TINY_DIR)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        tie_word_embeddings=True,
        max_position_embeddings=256,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "small"
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def trial_settings(**changes):
    from qra_bench.trial import TrialSettings

    return replace(TrialSettings(max_steps=2, fidelities=(0.5, 1.0)), **changes)


def write_design(path: Path, configs: list[tuple[int, int]]) -> str:
    path.write_text("".join(json.dumps({"bits": b, "ranks": r}) + "\n" for b, r in configs))
    return str(path)


def raw_keys(out: Path) -> list[tuple]:
    """(hash, seed, fidelity, status) of every row of every part, before deduplication."""
    keys = []
    for part in sorted(out.glob("part-*.parquet")):
        t = pq.read_table(part, columns=["config_hash", "seed", "fidelity", "status"])
        keys += list(zip(*(t.column(c).to_pylist() for c in t.column_names)))
    return keys


@pytest.fixture(scope="module")
def first_run(small_model, tmp_path_factory):
    """One collection of two configurations: all 16 bits (runs) and 4 bits with group size 96 (the
    quantizer refuses: 96 does not divide 128), max_retries=1, one worker."""
    tmp = tmp_path_factory.mktemp("collect")
    spec = CollectSpec(
        out=str(tmp / "table"),
        model=small_model,
        design="file",
        anchors=False,
        design_file=write_design(tmp / "design.jsonl", [(16, 4), (4, 4)]),
        settings=trial_settings(quant=replace(trial_settings().quant, group_size=96)),
        workers=1,
        max_retries=1,
    )
    return spec, collect(spec, progress=False)


def test_collect_writes_one_part_per_attempt_with_its_rows(first_run):
    spec, report = first_run
    assert (report.n_jobs, report.done, report.failed, report.skipped, report.pending) == (2, 1, 1, 0, 0)
    assert not report.interrupted and report.wall_s > 0 and report.trial_s > 0
    table = ResultsTable(spec.out)
    assert table.n_parts == 3  # one ok trial, two failed attempts
    ok = table.read()
    assert sorted(ok["fidelity"]) == [1, 2] and set(ok["bits"]) == {(16, 16)}
    metrics = [json.loads(m) for m in ok["extra_metrics"]]
    assert all(m["attempt"] == 1 and m["worker_pid"] != os.getpid() for m in metrics)


def test_failed_trial_is_recorded_with_its_error_and_retried_up_to_the_limit(first_run):
    spec, report = first_run
    assert report.failed_attempts == 2 and report.failed == 1
    assert "2 failed attempts" in report.failures[0] and "group size 96" in report.failures[0]
    rows = ResultsTable(spec.out).read(dedupe=False, include_failed=True)
    failed = rows[rows["status"] == "failed"]
    assert set(failed["bits"]) == {(4, 4)} and failed["run_id"].nunique() == 2 and len(failed) == 4
    assert all("group size 96 does not divide" in e for e in failed["error"])
    assert sorted(json.loads(m)["attempt"] for m in failed["extra_metrics"]) == [1, 1, 2, 2]


def test_rerun_skips_finished_trials_and_counts_earlier_attempts(first_run, monkeypatch):
    import qra_bench.collect.driver as driver

    spec, _ = first_run
    parts = set(ResultsTable(spec.out).part_paths())

    def no_worker(*args, **kwargs):
        raise AssertionError("a worker was started with nothing to run")

    monkeypatch.setattr(driver, "_run_local", no_worker)
    again = collect(spec, progress=False)
    assert (again.done, again.skipped, again.failed, again.failed_before, again.failed_attempts) == (0, 1, 1, 1, 0)
    assert "2 failed attempts in earlier runs" in again.failures[0]
    assert set(ResultsTable(spec.out).part_paths()) == parts


def test_resume_refuses_a_table_of_another_recipe(first_run):
    spec, _ = first_run
    other = replace(spec, settings=replace(spec.settings, max_steps=4))
    with pytest.raises(QRBenchError, match=r"other trial settings \(differing: max_steps\)"):
        collect(other, progress=False)
    with pytest.raises(QRBenchError, match="rows of task"):
        collect(replace(spec, task="bbc2"), progress=False)


@pytest.mark.slow
def test_raising_the_retry_limit_runs_one_more_attempt(first_run):
    spec, _ = first_run
    more = collect(replace(spec, max_retries=2), progress=False)
    assert (more.failed_attempts, more.failed, more.failed_before, more.skipped) == (1, 1, 0, 1)
    rows = ResultsTable(spec.out).read(dedupe=False, include_failed=True)
    assert rows[rows["status"] == "failed"]["run_id"].nunique() == 3


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_with_status_130_and_a_rerun_completes(small_model, tmp_path):
    out = tmp_path / "table"
    design_file = write_design(tmp_path / "d.jsonl", [(16, 4), (8, 4), (16, 8), (8, 8)])
    cmd = [
        sys.executable,
        "-m",
        "qra_bench.cli",
        "collect",
        "--model",
        small_model,
        "--design",
        "file",
        "--design-file",
        design_file,
        "--no-anchors",
        "--steps",
        "2",
        "--fidelities",
        "0.5,1.0",
        "--workers",
        "2",
        "--out",
        str(out),
        "--no-progress",
    ]
    # Restore the default SIGINT handling a background shell may have turned off, as in a terminal.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 240
    while not glob.glob(str(out / "part-*.parquet")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "interrupted: 4 jobs" in output and "rerun the same command to resume" in output
    assert "Traceback" not in output
    finished = raw_keys(out)
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    keys = raw_keys(out)
    assert set(finished) <= set(keys) and len(keys) == len(set(keys)) == 4 * 2
    ResultsTable(out).validate()


@pytest.mark.slow
def test_dask_local_cluster_collects_rows_from_both_workers_into_one_table(small_model, tmp_path):
    pytest.importorskip("distributed")
    spec = CollectSpec(
        out=str(tmp_path / "table"),
        model=small_model,
        design="file",
        anchors=False,
        design_file=write_design(tmp_path / "d.jsonl", [(16, 4), (8, 4), (16, 8), (8, 8)]),
        settings=trial_settings(),
        workers=2,
        executor="dask",
    )
    report = collect(spec, progress=False)
    assert (report.done, report.failed, report.pending) == (4, 0, 0)
    keys = raw_keys(Path(spec.out))
    assert len(keys) == len(set(keys)) == 8  # 4 trials x 2 fidelities, nothing lost, nothing twice
    ok = ResultsTable(spec.out).read()
    pids = {json.loads(m)["worker_pid"] for m in ok["extra_metrics"]}
    assert len(pids) == 2 and os.getpid() not in pids
