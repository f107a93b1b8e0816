"""Held-out news language modelling (task ``news``): the embedded default's main task.

The base model must keep predicting news text after its blocks are quantized, and LoRA adapts it to
articles it never saw. Training windows come from the ``finetune`` split of BBC News, evaluation windows
from the disjoint ``eval`` split; pretraining used neither. Every token of a window is a target: the task
loss is the next-token cross-entropy (nats per token) and the accuracy is greedy next-token exact match.

Why this task leads: the landscape study (docs/landscape.md, ``experiments/results/landscape.md``) shows that topic classification on
the tiny model is solved from the unquantized embeddings, so after fine-tuning bits do not matter there;
next-token prediction needs every block, so quantization damage survives fine-tuning and adapter rank
decides how much of it LoRA repairs -- the regime of QLoRA on real LLMs.
"""

from __future__ import annotations

import numpy as np

from qra_bench.corpora import bbc_splits
from qra_bench.tasks.base import TaskData
from qra_bench.tasks.bbc import held_out_lm_ids

#: Tokens per window (the model reads WINDOW - 1 and predicts the next token at each position).
WINDOW = 49
TRAIN_WINDOWS = 1600
EVAL_WINDOWS = 300
#: Windows are drawn with fixed seeds so that the data identity never changes between runs.
TRAIN_SEED, EVAL_SEED = 1, 2


def _windows(token_lists: list[list[int]], n: int, seed: int) -> np.ndarray:
    """``n`` windows of ``WINDOW`` tokens from random articles at random offsets (deterministic for ``seed``)."""
    usable = [ids for ids in token_lists if len(ids) > WINDOW]
    rng = np.random.default_rng(seed)
    out = np.empty((n, WINDOW), dtype=np.int64)
    for i in range(n):
        ids = usable[rng.integers(len(usable))]
        start = rng.integers(0, len(ids) - WINDOW + 1)
        out[i] = ids[start : start + WINDOW]
    return out


def build_news(tokenizer) -> TaskData:
    """Tokenize the BBC fine-tuning and evaluation splits into LM windows."""
    splits = bbc_splits()
    encode = lambda arts: [tokenizer(a.text, add_special_tokens=False)["input_ids"] for a in arts]  # noqa: E731
    train = _windows(encode(splits["finetune"]), TRAIN_WINDOWS, TRAIN_SEED)
    evaluation = _windows(encode(splits["eval"]), EVAL_WINDOWS, EVAL_SEED)
    empty = np.zeros(0, dtype=np.int64)
    return TaskData(
        name="news",
        train_prompts=train,
        train_labels=np.zeros(len(train), dtype=np.int64),
        eval_prompts=evaluation,
        eval_labels=np.zeros(len(evaluation), dtype=np.int64),
        label_token_ids=empty,
        lm_ids=held_out_lm_ids(tokenizer, splits["eval"]),
        kind="lm",
        description=f"BBC News language modelling: {WINDOW}-token windows, {TRAIN_WINDOWS} from the finetune split, "
        f"{EVAL_WINDOWS} from the eval split; greedy next-token accuracy",
    )
