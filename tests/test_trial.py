"""A real trial on the committed tiny checkpoint: rows per checkpoint, determinism, memory accounting."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from qra_bench.corpora import bbc_splits
from qra_bench.models import load_base
from qra_bench.space import SearchSpace
from qra_bench.tasks import load_task
from qra_bench.arch import ArchSpec
from qra_bench.memory import MemoryModel
from qra_bench.trial import TrialSettings, memory_settings, run_trial

STORAGE_TERMS = (
    "quantized_weights",
    "quant_metadata",
    "unquantized_block_weights",
    "lora_adapters",
    "block_norms_and_biases",
    "embeddings",
    "final_norm",
    "rotary_tables",
    "lm_head",
)


@pytest.fixture(scope="module")
def base_and_task():
    torch.set_num_threads(1)
    base = load_base("tiny")
    return base, load_task("bbc", base.tokenizer)


def test_bbc_splits_are_disjoint():
    splits = bbc_splits()
    keys = {name: {a.key for a in arts} for name, arts in splits.items()}
    assert len(keys["eval"]) == 600 and len(keys["finetune"]) == 400
    assert not keys["eval"] & keys["finetune"]
    assert not keys["eval"] & keys["pretrain"] and not keys["finetune"] & keys["pretrain"]


def test_trial_yields_one_row_per_checkpoint_and_repeats_exactly(base_and_task):
    base, task = base_and_task
    space = SearchSpace(8)
    config = space.config((2, 3, 4, 8, 16, 4, 4, 2), (4, 8, 16, 4, 8, 16, 4, 8))
    settings = replace(TrialSettings(), max_steps=4, fidelities=(0.5, 1.0), partial_eval=50, threads=1)
    first = run_trial(base, task, config, seed=3, settings=settings)
    assert [r.fidelity for r in first.rows] == [2, 4]
    for row in first.rows:
        assert row.status == "ok" and row.config_hash == config.hash and row.model_sha256 == base.sha256
        assert all(
            np.isfinite(v) for v in (row.eval_loss, row.accuracy, row.lm_loss, row.proxy_lm_loss, row.proxy_recon_error)
        )
        assert 0.0 <= row.accuracy <= 1.0 and row.proxy_recon_error > 0
    # Memory: rows record the bit-packed layout budgets charge; the storage torchao really allocated on this
    # CPU (int8 codes) equals the memory model's torchao layout, byte for byte.
    terms = json.loads(first.final.mem_breakdown)
    terms = terms.get("terms", terms)
    arch = ArchSpec.from_hf_config(base.model.config)
    packed = MemoryModel(arch, memory_settings(settings, torch.float32, task.seq_len)).breakdown(config)
    assert first.final.mem_predicted_bytes == packed.total
    unpacked = MemoryModel(
        arch, replace(memory_settings(settings, torch.float32, task.seq_len), backend="torchao")
    ).breakdown(config)
    assert first.final.mem_measured_param_bytes == sum(unpacked.to_dict()["terms"][t] for t in STORAGE_TERMS)
    assert sum(terms[t] for t in STORAGE_TERMS) < first.final.mem_measured_param_bytes  # 2-4 bit codes packed
    again = run_trial(base, task, config, seed=3, settings=settings)
    assert [r.eval_loss for r in again.rows] == [r.eval_loss for r in first.rows]
    other = run_trial(base, task, config, seed=4, settings=settings)
    assert [r.eval_loss for r in other.rows] != [r.eval_loss for r in first.rows]


def test_a_cipher_trial_records_accuracy_on_the_permuted_targets_before_and_after_fine_tuning(base_and_task):
    base, _ = base_and_task
    task = load_task("cipher", base.tokenizer)
    settings = replace(TrialSettings(), max_steps=2, fidelities=(1.0,), threads=1)
    row = run_trial(base, task, SearchSpace(8).config((16,) * 8, (8,) * 8), seed=0, settings=settings).final
    extra = json.loads(row.extra_metrics)
    assert 0.0 <= extra["proxy_focus_accuracy"] < row.proxy_accuracy  # the base writes the plain tokens
    assert 0.0 <= extra["focus_accuracy"] <= 1.0


# -- the fast path (dequantization cache, proxy reuse, inference-mode evaluation) changes no number ------------
METRICS = (
    "eval_loss",
    "accuracy",
    "lm_loss",
    "train_loss",
    "proxy_eval_loss",
    "proxy_accuracy",
    "proxy_lm_loss",
    "proxy_recon_error",
)
CACHE_CASES = {
    "torchao": ((2, 3, 4, 8, 16, 4, 5, 6), (4, 8, 0, 4, 8, 16, 4, 8)),
    "hqq": ((2, 3, 4, 8, 16, 4, 1, 2), (4, 0, 16, 4, 8, 16, 4, 8)),
    "bnb": ((4, 8, 4, 8, 16, 4, 8, 4), (4, 8, 16, 0, 8, 16, 4, 8)),
}


@pytest.fixture(scope="module")
def small_news(base_and_task):
    """The news task with a short held-out set (a small but real LM trial)."""
    base, _ = base_and_task
    task = load_task("news", base.tokenizer)
    return replace(task, eval_prompts=task.eval_prompts[:24], eval_labels=task.eval_labels[:24], lm_ids=task.lm_ids[:4])


def _run(monkeypatch, fast: bool, base, task, config, seed, settings):
    import qra_bench.trial as trial_module

    monkeypatch.setenv("QRA_BENCH_FAST", "1" if fast else "0")
    trial_module._PROXIES.clear()
    return run_trial(base, task, config, seed=seed, settings=settings)


@pytest.mark.parametrize("backend", sorted(CACHE_CASES))
def test_cached_dequantization_gives_the_same_metrics_and_memory_as_the_plain_path(
    backend, base_and_task, small_news, monkeypatch
):
    base, _ = base_and_task
    bits, ranks = CACHE_CASES[backend]
    space = SearchSpace(8, bits=(1, 2, 3, 4, 5, 6, 8, 16), ranks=(0, 4, 8, 16))
    config = space.config(bits, ranks)
    settings = replace(
        TrialSettings(),
        max_steps=6,
        warmup_steps=2,
        fidelities=(0.5, 1.0),
        partial_eval=12,
        eval_batch_size=48,
        threads=1,
        quant=replace(TrialSettings().quant, backend=backend),
    )
    plain = _run(monkeypatch, False, base, small_news, config, 1, settings)
    fast = _run(monkeypatch, True, base, small_news, config, 1, settings)
    assert [name for name, _ in fast.phases].count("dequant cache") == 1 and len(fast.cpu_phases) == len(fast.phases)
    assert "dequant cache" not in dict(plain.phases)
    for a, b in zip(plain.rows, fast.rows):
        for name in METRICS:
            assert abs(getattr(a, name) - getattr(b, name)) <= 1e-6, (backend, name, getattr(a, name), getattr(b, name))
        assert a.mem_measured_param_bytes == b.mem_measured_param_bytes
        assert a.mem_predicted_bytes == b.mem_predicted_bytes
    # The proxies of the same bits are reused by the next trial (another seed and ranks): the same numbers.
    other = run_trial(base, small_news, space.config(bits, (8,) * 8), seed=2, settings=settings).final
    assert (other.proxy_eval_loss, other.proxy_lm_loss) == (fast.final.proxy_eval_loss, fast.final.proxy_lm_loss)
    assert other.time_proxy_s < fast.final.time_proxy_s


def test_the_shipped_tables_still_resume_under_the_recipe():
    # Execution choices (the dequantization cache, proxy reuse, threads) live outside TrialSettings, so the
    # recorded recipe keeps its fields and the collector's resume guard accepts the shipped tables.
    from pathlib import Path

    from qra_bench.collect import CollectSpec, _check_table_matches
    from qra_bench.table import ResultsTable

    table = Path(__file__).resolve().parent.parent / "datasets_cache" / "tables" / "tiny-news"
    frame = ResultsTable(table).read(dedupe=False, include_failed=True)
    assert {k for text in frame["trial_settings"].unique() for k in json.loads(text)} == set(
        json.loads(TrialSettings().to_json())
    )
    _check_table_matches(
        frame, CollectSpec(out=str(table), model="tiny", task="news"), replace(TrialSettings(), threads=1)
    )
