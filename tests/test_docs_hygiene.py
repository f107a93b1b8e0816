"""The project's files speak to users: no numbered development rounds, no ticket numbers, no files outside the
repository. Scans the README, docs/, the package, experiments/, benchmarks/, tests/, table cards and build
files (text files only; data files such as JSON lines are not prose and are skipped)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: What is scanned: files, and folders scanned recursively.
SCANNED = (
    "README.md",
    "Makefile",
    "pyproject.toml",
    ".pre-commit-config.yaml",
    "docs",
    "qra_bench",
    "experiments",
    "benchmarks",
    "examples",
    "tests",
    "datasets_cache/tables",
    "datasets_cache/scenarios",
    "surrogates",
)
TEXT_SUFFIXES = {".md", ".py", ".sh", ".toml", ".txt", ".cfg", ".yaml", ".yml", ".rst"}
SKIPPED: set[Path] = set()

FORBIDDEN = [
    (
        re.compile(r"\b(stop|session|issue|round|ticket|sprint)s?[ -]#?\d+", re.I),
        "a numbered development round or ticket",
    ),
    (re.compile(r"\b(stop|session|issue|round)s \d+ (to|and|-) \d+", re.I), "a range of development rounds"),
    (re.compile(r"\b(this|that|each|next|previous|last|earlier|later) (stop|session)\b", re.I), "a development round"),
    (re.compile(r"\bissue's\b|\bthe issue\b", re.I), "a ticket"),
    (re.compile(r"#\d{1,5}\b(?![0-9a-fA-F])(?=[\s).,;:]|$)"), "a ticket number"),
    (re.compile(r"\.\./shared|/work/shared|/work/collector"), "a path outside the repository"),
    (re.compile(r"\b(METHOD|DESIGN|PROBES|STYLE)\.md\b"), "a document outside the repository"),
]


def _files() -> list[Path]:
    found: list[Path] = []
    for entry in SCANNED:
        path = REPO / entry
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix in TEXT_SUFFIXES and "__pycache__" not in p.parts
            )
    return [p for p in found if p not in SKIPPED and p.resolve() != Path(__file__).resolve()]


def _problems(text: str) -> list[tuple[int, str, str]]:
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        for pattern, what in FORBIDDEN:
            match = pattern.search(line)
            if match:
                out.append((number, what, match.group(0)))
    return out


def test_the_patterns_catch_what_they_are_meant_to():
    for bad in (
        "measured at stop 8",
        "Session 10, the learning rate",
        "issue 3's criteria",
        "see ../shared/DESIGN.md",
        "from /work/shared/METHOD.md",
        "as PROBES.md found",
        "(stops 8 to 10)",
        "the session-4 pick",
        "fixed in #123.",
        "as this stop showed",
        "round 2 of tuning",
    ):
        assert _problems(bad), bad
    for fine in (
        "early stopping",
        "the collector stops after 10 trials",
        "round(x, 3)",
        "rounding to 8 bits",
        "sessions of a Dask cluster",
        "hash `5f1e4c30...`",
        "color #ff0000",
        "issues a warning",
    ):
        assert not _problems(fine), fine


def test_the_scan_covers_the_project():
    files = {p.relative_to(REPO).as_posix() for p in _files()}
    assert "README.md" in files and "qra_bench/cli/app.py" in files
    assert any(f.startswith("experiments/") for f in files) and any(f.startswith("benchmarks/") for f in files)


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_development_rounds_tickets_or_outside_files(path):
    problems = _problems(path.read_text(errors="replace"))
    assert not problems, "\n".join(f"{path.relative_to(REPO)}:{n}: {what}: {text!r}" for n, what, text in problems)
