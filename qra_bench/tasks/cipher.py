"""Held-out news language modelling in a new surface vocabulary (task ``cipher``).

The windows of ``news``, with the ``N_SWAPPED`` most frequent tokens of the fine-tuning windows permuted
among themselves by one fixed derangement (the article text is unchanged; " the" is written as another
frequent token, and so on; about a fifth of all tokens are affected). The eval windows carry the same map.

Why: on ``news`` the base already knows the domain, so LoRA only repairs quantization damage and rank
barely matters. Here the adapters must also learn a new mapping over what the base knows -- like adapting an
LLM to a new format or script -- so the adapter's capacity (rank) matters, while the news knowledge the
mapping relies on still lives in the quantized weights (bits matter). Measured on the tiny model in
``experiments/probes/cipher_probe.py`` (docs/landscape.md, "What was tried"). The held-out LM text (``lm_ids``) stays
plain, so ``lm_loss`` still measures retained capability.
"""

from __future__ import annotations

import numpy as np

from qra_bench.tasks.base import TaskData
from qra_bench.tasks.news import EVAL_WINDOWS, TRAIN_WINDOWS, WINDOW, build_news

#: How many of the most frequent fine-tuning tokens are permuted, and the seed of the permutation. 16 balances
#: the two axes on the tiny model (probe, seed 0): 64 made rank 3x as strong as bits (r4 -> r16 0.39 nats,
#: 2 -> 16 bits 0.12-0.17); 16 gives 0.23-0.31 and 0.21-0.29.
N_SWAPPED = 16
PERMUTATION_SEED = 7


def cipher_map(
    train_windows: np.ndarray, vocab_size: int, n_swapped: int = N_SWAPPED, seed: int = PERMUTATION_SEED
) -> np.ndarray:
    """A token-id map (length ``vocab_size``) that sends each of the ``n_swapped`` most frequent tokens of
    ``train_windows`` to another of them (no fixed points) and every other token to itself."""
    counts = np.bincount(train_windows.ravel(), minlength=vocab_size)
    top = np.argsort(-counts, kind="stable")[:n_swapped]
    rng = np.random.default_rng(seed)
    image = top.copy()
    while True:  # rejection sampling of a derangement: about e tries
        rng.shuffle(image)
        if not np.any(image == top):
            break
    mapping = np.arange(vocab_size, dtype=np.int64)
    mapping[top] = image
    return mapping


def build_cipher(tokenizer, n_swapped: int = N_SWAPPED) -> TaskData:
    """The ``news`` windows with the frequent-token permutation applied to training and evaluation windows
    (``n_swapped`` other than the default only in probes: the shipped task and its tables use ``N_SWAPPED``)."""
    news = build_news(tokenizer)
    mapping = cipher_map(news.train_prompts, len(tokenizer), n_swapped)
    swapped = float(np.mean(mapping[news.eval_prompts] != news.eval_prompts))
    return TaskData(
        name="cipher",
        train_prompts=mapping[news.train_prompts],
        train_labels=news.train_labels,
        eval_prompts=mapping[news.eval_prompts],
        eval_labels=news.eval_labels,
        label_token_ids=news.label_token_ids,
        lm_ids=news.lm_ids,
        kind="lm",
        focus_token_ids=np.flatnonzero(mapping != np.arange(len(mapping))),
        description=f"BBC News language modelling with the {n_swapped} most frequent tokens permuted (seed "
        f"{PERMUTATION_SEED}; {swapped:.0%} of eval tokens): {WINDOW}-token windows, {TRAIN_WINDOWS} "
        f"from the finetune split, {EVAL_WINDOWS} from the eval split; greedy next-token accuracy",
    )
