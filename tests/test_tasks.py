"""The tasks on the committed tiny checkpoint: identities, held-out splits, and the damage the default relies on."""

import numpy as np
import pytest
import torch

from qra_bench.models import load_base
from qra_bench.quant import QuantSettings, quantize_blocks
from qra_bench.tasks import load_task
from qra_bench.tasks.news import EVAL_WINDOWS, TRAIN_WINDOWS, WINDOW
from qra_bench.trial import compute_device, evaluate


@pytest.fixture(scope="module")
def base():
    torch.set_num_threads(1)
    return load_base("tiny")


def test_news_windows_are_fixed_and_every_token_is_a_target(base):
    news = load_task("news", base.tokenizer)
    assert news.kind == "lm" and news.train_prompts.shape == (TRAIN_WINDOWS, WINDOW)
    assert news.eval_prompts.shape == (EVAL_WINDOWS, WINDOW)
    assert news.sha256 == load_task("news", base.tokenizer).sha256  # deterministic data identity
    ids, targets = news.train_batch(np.arange(4))
    assert torch.equal(ids, targets) and ids.shape == (4, WINDOW)


def test_news_and_bbc_have_distinct_identities(base):
    assert load_task("news", base.tokenizer).sha256 != load_task("bbc", base.tokenizer).sha256


def test_uniform_2bit_costs_over_half_a_nat_on_held_out_news_before_fine_tuning(base):
    # The landscape's premise (docs/landscape.md): quantization hurts the base before any fine-tuning.
    news = load_task("news", base.tokenizer)
    device, dtype = compute_device()
    losses = {}
    for bits in (16, 4, 2):
        model = base.fresh_copy(device, dtype)
        quantize_blocks(model, [bits] * 8, QuantSettings())
        losses[bits] = evaluate(model, news, 200, device, n_eval=100)
    assert losses[2].eval_loss - losses[16].eval_loss > 0.5
    assert losses[16].eval_loss <= losses[4].eval_loss < losses[2].eval_loss
    assert losses[2].accuracy < losses[16].accuracy


def test_cipher_permutes_only_the_most_frequent_tokens_and_keeps_plain_lm_text(base):
    from qra_bench.tasks.cipher import N_SWAPPED, cipher_map

    news, cipher = load_task("news", base.tokenizer), load_task("cipher", base.tokenizer)
    mapping = cipher_map(news.train_prompts, len(base.tokenizer))
    moved = np.flatnonzero(mapping != np.arange(len(mapping)))
    assert len(moved) == N_SWAPPED  # a derangement of the frequent set: every one of them moves
    assert sorted(mapping[moved]) == sorted(moved)  # a permutation: the map is invertible
    counts = np.bincount(news.train_prompts.ravel(), minlength=len(mapping))
    assert counts[moved].min() >= np.delete(counts, moved).max()  # exactly the most frequent tokens
    assert np.array_equal(cipher.eval_prompts, mapping[news.eval_prompts])
    assert np.array_equal(cipher.lm_ids, news.lm_ids)  # retained capability is measured on plain text
    assert cipher.sha256 == load_task("cipher", base.tokenizer).sha256 != news.sha256
    # the task's own skill: accuracy is also reported on the permuted targets, a set derived from the data
    assert np.array_equal(cipher.focus_token_ids, moved) and len(news.focus_token_ids) == 0
    # ...so declaring it leaves the data identity every shipped tiny-cipher row records unchanged
    assert cipher.sha256.startswith("d6b6585fe14316838c3b")


def test_a_probe_cipher_with_more_swapped_tokens_moves_that_many_and_is_a_different_dataset(base):
    from qra_bench.tasks.cipher import build_cipher

    wide, shipped = build_cipher(base.tokenizer, 32), load_task("cipher", base.tokenizer)
    assert len(wide.focus_token_ids) == 32 and set(shipped.focus_token_ids) < set(wide.focus_token_ids)
    assert wide.sha256 != shipped.sha256 and "32 most frequent" in wide.description


def test_cipher_must_be_learned_the_unquantized_base_does_far_worse_on_it_than_on_news(base):
    device, dtype = compute_device()
    model = base.fresh_copy(device, dtype)
    news = evaluate(model, load_task("news", base.tokenizer), 200, device, n_eval=100)
    cipher = evaluate(model, load_task("cipher", base.tokenizer), 200, device, n_eval=100)
    assert cipher.eval_loss > news.eval_loss + 1.0  # measured: 5.88 vs 4.35 nats
    assert cipher.lm_loss == pytest.approx(news.lm_loss)
    # the base writes the plain tokens, so on the permuted targets it is far worse than on all targets
    assert news.focus_accuracy is None and 0.0 <= cipher.focus_accuracy < cipher.accuracy / 2
