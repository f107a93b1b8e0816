"""BBC News topic classification with new label words (task ``bbc``).

The base model saw the topic format with the real topic names during pretraining (pretraining articles
only). The fine-tuning task asks for *arbitrary new words* for the same five topics (business -> " red",
...), so the mapping must be learned by the adapters, while the topic knowledge it relies on lives in the
quantized weights. Early landscape probes (docs/landscape.md) found that this makes both bits and rank matter.
Training uses the ``finetune`` split, evaluation the disjoint ``eval`` split (600 articles).
"""

from __future__ import annotations

import numpy as np

from qra_bench.corpora import BBC_TOPICS, bbc_splits
from qra_bench.errors import QRBenchError
from qra_bench.tasks.base import TaskData
from qra_bench.tasks.formats import PROMPT_TOKENS, TOPIC_CUE, topic_prompt_ids

# Colour words that are single tokens in the tiny tokenizer and in common LLM tokenizers.
LABEL_WORDS = {"business": " red", "entertainment": " black", "politics": " white", "sports": " gold", "tech": " dark"}
LM_CHUNK_TOKENS = 128
LM_CHUNKS = 32


def single_token(tokenizer, word: str) -> int:
    """The id of ``word`` if it is one token, else a user error naming it."""
    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise QRBenchError(f"label word {word!r} is {len(ids)} tokens for this tokenizer; labels must be single tokens")
    return ids[0]


def held_out_lm_ids(tokenizer, articles, n_chunks: int = LM_CHUNKS) -> np.ndarray:
    """Held-out LM text: the first evaluation articles (never trained on) as ``n_chunks`` chunks of
    ``LM_CHUNK_TOKENS`` tokens (fewer when the articles run out; probes ask for more than the tasks use)."""
    stream: list[int] = []
    for a in articles:
        stream.extend(tokenizer(a.text, add_special_tokens=False)["input_ids"])
        if len(stream) >= n_chunks * LM_CHUNK_TOKENS:
            break
    n = min(n_chunks, len(stream) // LM_CHUNK_TOKENS)
    return np.asarray(stream[: n * LM_CHUNK_TOKENS], dtype=np.int64).reshape(n, LM_CHUNK_TOKENS)


def build_bbc(tokenizer, label_words: dict[str, str] = LABEL_WORDS, prompt_tokens: int = PROMPT_TOKENS) -> TaskData:
    """Tokenize the BBC fine-tuning and evaluation splits into a :class:`TaskData`."""
    splits = bbc_splits()
    cue = tokenizer(TOPIC_CUE, add_special_tokens=False)["input_ids"]
    label_ids = np.asarray([single_token(tokenizer, label_words[t]) for t in BBC_TOPICS], dtype=np.int64)

    def encode(articles):
        prompts, labels = [], []
        for a in articles:
            ids = tokenizer(a.text, add_special_tokens=False)["input_ids"]
            if len(ids) < prompt_tokens:
                continue
            prompts.append(topic_prompt_ids(ids, cue, length=prompt_tokens))
            labels.append(BBC_TOPICS.index(a.topic))
        return np.asarray(prompts, dtype=np.int64), np.asarray(labels, dtype=np.int64)

    train_p, train_l = encode(splits["finetune"])
    eval_p, eval_l = encode(splits["eval"])
    lm = held_out_lm_ids(tokenizer, splits["eval"])
    return TaskData(
        name="bbc",
        train_prompts=train_p,
        train_labels=train_l,
        eval_prompts=eval_p,
        eval_labels=eval_l,
        label_token_ids=label_ids,
        lm_ids=lm,
        description="BBC News topic -> new label word; " + ", ".join(f"{t}->{w!r}" for t, w in label_words.items()),
    )
