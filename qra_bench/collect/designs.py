"""Designs: which configurations a collection runs (see :mod:`qra_bench.collect` for the list).

Pure functions of the search space and a seed that return ``list[QRConfig]``, deduplicated by configuration
hash, the anchor configurations first; :func:`make_design` picks one by name.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from qra_bench.errors import QRBenchError
from qra_bench.space import QRConfig, SearchSpace

if TYPE_CHECKING:
    from qra_bench.memory import MemoryModel

__all__ = [
    "ANCHOR_BITS",
    "DESIGNS",
    "MemoryBin",
    "anchor_configs",
    "file_design",
    "importance_design",
    "load_importance",
    "make_design",
    "memory_bins",
    "random_design",
    "space_filling_design",
    "stratified_design",
]

#: Bit widths of the anchor configurations (those on the space's bit ladder), each with every rank.
ANCHOR_BITS: tuple[int, ...] = (2, 3, 4, 8, 16)
DESIGNS: tuple[str, ...] = ("stratified", "random", "space-filling", "importance", "file", "anchors")


def _space_size(space: SearchSpace) -> float:
    return float(len(space.bits) * len(space.ranks)) ** space.n_blocks


class _Picker:
    """Configurations in first-come order, one per hash."""

    def __init__(self, first: Sequence[QRConfig] = ()) -> None:
        self.configs: list[QRConfig] = []
        self.hashes: set[str] = set()
        for cfg in first:
            self.add(cfg)

    def add(self, cfg: QRConfig) -> bool:
        if cfg.hash in self.hashes:
            return False
        self.hashes.add(cfg.hash)
        self.configs.append(cfg)
        return True

    def __len__(self) -> int:
        return len(self.configs)


def anchor_configs(space: SearchSpace) -> list[QRConfig]:
    """Uniform configurations: bits 2, 3, 4, 8, 16 (those on the ladder) times every rank, bits-major."""
    return [space.uniform(b, r) for b in ANCHOR_BITS if b in space.bits for r in space.ranks]


def _start(space: SearchSpace, n: int, anchors: bool) -> tuple[_Picker, int]:
    """The anchors (when wanted) and how many more configurations the design must add to reach ``n``."""
    first = anchor_configs(space) if anchors else []
    if n < len(first):
        raise QRBenchError(
            f"n={n} is less than the {len(first)} anchor configurations that every design includes; "
            f"give n >= {len(first)} or turn anchors off (--no-anchors)"
        )
    if n > _space_size(space):
        raise QRBenchError(f"n={n} exceeds the {int(_space_size(space))} configurations of the space")
    picker = _Picker(first)
    return picker, n - len(picker)


def _fill(
    picker: _Picker, n: int, draw: Callable[[int], tuple[np.ndarray, np.ndarray]], space: SearchSpace, what: str
) -> list[QRConfig]:
    """Add configurations from ``draw(m) -> (bit_idx, rank_idx)`` batches until ``picker`` holds ``n``."""
    for attempt in range(1000):
        missing = n - len(picker)
        if missing <= 0:
            return picker.configs[:n]
        # First one batch of exactly the missing size (a Latin hypercube is stratified only as a whole), then
        # larger batches to replace duplicates.
        bit_idx, rank_idx = draw(missing if attempt == 0 else 2 * missing + 8)
        for b, r in zip(bit_idx, rank_idx):
            picker.add(space.from_indices(b, r))
            if len(picker) == n:
                return picker.configs
    raise QRBenchError(f"the {what} design found only {len(picker)} distinct configurations of the {n} asked for")


def random_design(space: SearchSpace, n: int, seed: int = 0, *, anchors: bool = True) -> list[QRConfig]:
    """``n`` configurations: the anchors, then independent uniform draws (every block's rungs uniform)."""
    picker, _ = _start(space, n, anchors)
    rng = np.random.default_rng(seed)
    return _fill(picker, n, lambda m: space.sample_indices(rng, m), space, "random")


def space_filling_design(space: SearchSpace, n: int, seed: int = 0, *, anchors: bool = True) -> list[QRConfig]:
    """``n`` configurations: the anchors, then a Latin hypercube over the 2L rung positions.

    Every coordinate of the hypercube (bits of block l, rank of block l) is stratified, so each rung of each
    block appears about equally often; points are snapped to rungs (``floor(u * n_rungs)``).
    """
    from scipy.stats import qmc

    picker, _ = _start(space, n, anchors)
    L, nb, nr = space.n_blocks, len(space.bits), len(space.ranks)
    rng = np.random.default_rng(seed)

    def draw(m: int) -> tuple[np.ndarray, np.ndarray]:
        u = qmc.LatinHypercube(d=2 * L, rng=rng).random(m)
        bit_idx = np.minimum((u[:, :L] * nb).astype(np.int64), nb - 1)
        rank_idx = np.minimum((u[:, L:] * nr).astype(np.int64), nr - 1)
        return bit_idx, rank_idx

    return _fill(picker, n, draw, space, "space-filling")


def _tilted_rungs(rng: np.random.Generator, m: int, n_rungs: int, z: np.ndarray, temperature: float) -> np.ndarray:
    """(m, L) rung indices; block l's rung i has log-probability ``temperature * z[l] * (i / (k-1) - 1/2)``."""
    if n_rungs == 1:
        return np.zeros((m, len(z)), dtype=np.int64)
    pos = np.arange(n_rungs) / (n_rungs - 1) - 0.5
    logits = temperature * z[:, None] * pos[None, :]  # (L, k)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    cdf = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)  # (L, k)
    u = rng.random((m, len(z), 1))
    return np.minimum((u > cdf[None, :, :]).sum(axis=2), n_rungs - 1).astype(np.int64)


def _standardize(values: Sequence[float] | np.ndarray, n_blocks: int, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.shape != (n_blocks,) or not np.all(np.isfinite(arr)):
        raise QRBenchError(f"{what} must be {n_blocks} finite numbers (one per block), got shape {arr.shape}")
    centred = arr - arr.mean()
    scale = np.abs(centred).max()
    return centred / scale if scale > 0 else np.zeros(n_blocks)


def importance_design(
    space: SearchSpace,
    n: int,
    seed: int = 0,
    importance_q: Sequence[float] | np.ndarray | None = None,
    importance_r: Sequence[float] | np.ndarray | None = None,
    *,
    temperature: float = 3.0,
    anchors: bool = True,
) -> list[QRConfig]:
    """``n`` configurations: the anchors, then draws biased by per-block importance.

    Importances are centred and scaled to [-1, 1] per axis; block ``l``'s rung ``i`` (of ``k``) is drawn with
    probability proportional to ``exp(temperature * z_l * (i / (k - 1) - 1/2))``: high bits (ranks) where
    ``importance_q`` (``importance_r``) is high, low ones where it is low, uniform where it is average.
    ``None`` means equal importance (uniform on that axis).
    """
    picker, _ = _start(space, n, anchors)
    L = space.n_blocks
    zq = _standardize(importance_q, L, "importance_q") if importance_q is not None else np.zeros(L)
    zr = _standardize(importance_r, L, "importance_r") if importance_r is not None else np.zeros(L)
    rng = np.random.default_rng(seed)

    def draw(m: int) -> tuple[np.ndarray, np.ndarray]:
        return (
            _tilted_rungs(rng, m, len(space.bits), zq, temperature),
            _tilted_rungs(rng, m, len(space.ranks), zr, temperature),
        )

    return _fill(picker, n, draw, space, "importance")


def load_importance(path: str | os.PathLike, n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """``(importance_q, importance_r)`` from a JSON object ``{"importance_q": [...], "importance_r": [...]}``."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise QRBenchError(f"cannot read importance file {str(path)!r}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise QRBenchError(f"importance file {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not {"importance_q", "importance_r"} <= set(data):
        raise QRBenchError(f"importance file {str(path)!r} must hold an object with keys importance_q and importance_r")
    try:
        q = np.asarray(data["importance_q"], dtype=float)
        r = np.asarray(data["importance_r"], dtype=float)
    except (TypeError, ValueError):
        raise QRBenchError(
            f"importance file {str(path)!r}: importance_q and importance_r must be lists of numbers"
        ) from None
    for name, arr in (("importance_q", q), ("importance_r", r)):
        _standardize(arr, n_blocks, f"{path}: {name}")
    return q, r


# -- stratified ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MemoryBin:
    """Configurations whose total training memory is in ``[lo, hi)`` bytes (``[lo, hi]`` when ``closed``)."""

    name: str
    lo: int
    hi: int
    closed: bool = False

    def contains(self, total: np.ndarray | int) -> np.ndarray | bool:
        total = np.asarray(total)
        return (total >= self.lo) & ((total <= self.hi) if self.closed else (total < self.hi))


def memory_bins(
    memory_model: "MemoryModel", n_bins: int = 8, focus_width: float = 0.05
) -> tuple[list[MemoryBin], list[MemoryBin]]:
    """``(focus, main)`` memory bins of the space, bytes of total training memory.

    ``main``: ``n_bins`` equal-width bins over the part of 0.3-1.0 x fp16-lora the space can reach, plus one
    bin below 0.3 x fp16-lora and one above fp16-lora where the space reaches there; together they cover
    every configuration. ``focus``: two narrow bins just below and just above uniform-4bit, each
    ``focus_width`` of the space's memory span wide (they overlap the main bins).
    """
    lo_all = int(memory_model.total_bytes(memory_model.space.min_config()))
    hi_all = int(memory_model.total_bytes(memory_model.space.max_config()))
    fp16 = memory_model.budget("fp16-lora").bytes
    u4 = memory_model.budget("uniform-4bit").bytes
    a, b = max(lo_all, int(0.3 * fp16)), min(hi_all, fp16)
    main: list[MemoryBin] = []
    if lo_all < a:
        main.append(MemoryBin("below 0.3xfp16-lora", lo_all, a))
    if b > a:
        edges = np.linspace(a, b, n_bins + 1).round().astype(np.int64)
        edges[-1] = b
        for i in range(n_bins):
            closed = i == n_bins - 1 and hi_all <= fp16
            main.append(
                MemoryBin(
                    f"{edges[i] / fp16:.3f}-{edges[i + 1] / fp16:.3f}xfp16-lora",
                    int(edges[i]),
                    int(edges[i + 1]),
                    closed,
                )
            )
    if hi_all > fp16 or not main:
        main.append(MemoryBin("above fp16-lora", max(b, lo_all), hi_all, closed=True))
    width = max(1, int(focus_width * (hi_all - lo_all)))
    focus = [
        MemoryBin("just below uniform-4bit", u4 - width, u4, closed=True),
        MemoryBin("just above uniform-4bit", u4 + 1, u4 + 1 + width),
    ]
    return focus, main


def _level_draws(rng: np.random.Generator, space: SearchSpace, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(m, L) rung indices from a per-configuration level: block rungs ~ Binomial(k - 1, p), p ~ U(0, 1).

    Unlike uniform draws, whose memory concentrates around the middle, levels reach the whole memory range.
    """
    L = space.n_blocks
    pb, pr = rng.random((m, 1)), rng.random((m, 1))
    bit_idx = rng.binomial(len(space.bits) - 1, np.broadcast_to(pb, (m, L)))
    rank_idx = rng.binomial(len(space.ranks) - 1, np.broadcast_to(pr, (m, L)))
    return bit_idx.astype(np.int64), rank_idx.astype(np.int64)


def _quotas(total: int, n_bins: int) -> list[int]:
    base, extra = divmod(total, n_bins)
    return [base + (i < extra) for i in range(n_bins)]


def stratified_design(
    space: SearchSpace,
    memory_model: "MemoryModel",
    n: int,
    seed: int = 0,
    *,
    n_bins: int = 8,
    focus_share: float = 0.25,
    focus_width: float = 0.05,
    anchors: bool = True,
) -> list[QRConfig]:
    """``n`` configurations: the anchors, then even coverage of the memory bins of :func:`memory_bins`.

    A share ``focus_share`` of the non-anchor configurations goes to the two bins around uniform-4bit, the
    rest evenly to the main bins. Candidates come from level draws (see ``_level_draws``); a bin short of
    candidates is filled by repairing larger configurations down into it (``MemoryModel.repair`` with random
    block importances, so repairs differ). Quota a bin cannot use (a bin with fewer distinct configurations
    than its share) moves to the other bins.
    """
    if memory_model.space != space:
        raise QRBenchError(f"the memory model's space {memory_model.space} is not the design's space {space}")
    if not 0 <= focus_share <= 1:
        raise QRBenchError(f"focus_share must be in [0, 1], got {focus_share}")
    picker, k = _start(space, n, anchors)
    if k == 0:
        return picker.configs
    rng = np.random.default_rng(seed)
    focus, main = memory_bins(memory_model, n_bins, focus_width)
    n_focus = round(focus_share * k)
    quota = {id(b): q for b, q in zip(focus + main, _quotas(n_focus, len(focus)) + _quotas(k - n_focus, len(main)))}

    m = max(4000, 40 * k)
    bit_idx, rank_idx = _level_draws(rng, space, m)
    totals = memory_model.total_bytes_batch(bit_idx, rank_idx)
    order = rng.permutation(m)

    def take_from_pool(b: MemoryBin, want: int) -> int:
        got = 0
        for i in order[b.contains(totals[order])]:
            if got == want:
                break
            got += picker.add(space.from_indices(bit_idx[i], rank_idx[i]))
        return got

    min_total = memory_model.total_bytes(space.min_config())

    def take_by_repair(b: MemoryBin, want: int) -> int:
        if b.hi < min_total:  # no configuration can be repaired into a bin below the smallest one
            return 0
        above = order[totals[order] > b.hi]
        got = 0
        for i in above[: 20 * want]:
            if got == want:
                break
            cfg = memory_model.repair(
                space.from_indices(bit_idx[i], rank_idx[i]),
                max(1, b.hi - (not b.closed)),
                importance_q=rng.random(space.n_blocks),
                importance_r=rng.random(space.n_blocks),
            )
            if b.contains(memory_model.total_bytes(cfg)):
                got += picker.add(cfg)
        return got

    short = 0
    for b in focus + main:
        want = quota[id(b)]
        got = take_from_pool(b, want)
        if got < want:
            got += take_by_repair(b, want - got)
        short += want - got
    # Quota that a bin could not use goes round the main bins, then to uniform draws (never fewer than n).
    rounds = 0
    while short > 0 and rounds < 3:
        rounds += 1
        for b in main:
            if short == 0:
                break
            short -= take_from_pool(b, 1)
    return _fill(picker, n, lambda mm: space.sample_indices(rng, mm), space, "stratified")


# -- explicit list -----------------------------------------------------------------------------------------
def _values(value: Any, n_blocks: int, what: str) -> tuple[int, ...]:
    if isinstance(value, bool):
        raise QRBenchError(f"{what} must be integers, got {value!r}")
    if isinstance(value, int):
        return (value,) * n_blocks
    if isinstance(value, str):
        return SearchSpace.parse_ladder_values(value.replace(";", ",").replace(" ", ",").strip(","), n_blocks, what)
    if isinstance(value, list):
        if len(value) == 1:
            value = value * n_blocks
        return tuple(value)
    raise QRBenchError(f"{what} must be a list of integers, one integer or a string like '4,4,2', got {value!r}")


def file_design(space: SearchSpace, path: str | os.PathLike, *, anchors: bool = True) -> list[QRConfig]:
    """The configurations listed in ``path`` (after the anchors), in file order, duplicates dropped.

    JSON lines (``.jsonl``, ``.ndjson``, ``.json`` or any file whose first entry starts with ``{``): one object
    per line with ``bits`` and ``ranks`` (a list with one value per block, one value for all blocks, or a
    string ``"4,4,2,..."``); other keys are ignored. A ``.json`` file may also hold one JSON array of such
    objects. CSV: a header with ``bits`` and ``ranks`` columns, values as in ``"4,4,2,..."`` (quoted) or
    separated by spaces or semicolons. Blank lines and lines starting with ``#`` are skipped. A bad line
    raises :class:`QRBenchError` naming the file, the line and the problem.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise QRBenchError(f"cannot read design file {str(p)!r}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise QRBenchError(f"design file {str(p)!r} is not UTF-8 text (byte {exc.start})") from None
    L = space.n_blocks
    entries: list[tuple[int, Any, Any]] = []  # (line number, bits, ranks)
    stripped = text.lstrip()
    is_json = p.suffix.lower() in (".jsonl", ".ndjson", ".json") or stripped.startswith(("{", "["))
    if is_json and stripped.startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise QRBenchError(f"{p}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        for i, rec in enumerate(records):
            if not isinstance(rec, dict) or not {"bits", "ranks"} <= set(rec):
                raise QRBenchError(f"{p}: entry {i + 1} of the array must be an object with 'bits' and 'ranks'")
            entries.append((i + 1, rec["bits"], rec["ranks"]))
    elif is_json:
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise QRBenchError(f"{p}:{lineno}: not a JSON object ({exc.msg}): {line.strip()[:80]!r}") from None
            if not isinstance(rec, dict) or not {"bits", "ranks"} <= set(rec):
                raise QRBenchError(
                    f"{p}:{lineno}: needs an object with keys 'bits' and 'ranks', got {line.strip()[:80]!r}"
                )
            entries.append((lineno, rec["bits"], rec["ranks"]))
    else:
        lines = [
            (i, line)
            for i, line in enumerate(text.splitlines(), start=1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
        reader = csv.DictReader([line for _, line in lines])
        if reader.fieldnames is None or not {"bits", "ranks"} <= {f.strip() for f in reader.fieldnames}:
            raise QRBenchError(
                f"{p}: a CSV design needs a header with 'bits' and 'ranks' columns, got {reader.fieldnames}"
            )
        reader.fieldnames = [f.strip() for f in reader.fieldnames]
        for (lineno, _), rec in zip(lines[1:], reader):
            if rec.get("bits") is None or rec.get("ranks") is None:
                raise QRBenchError(f"{p}:{lineno}: missing the bits or ranks value")
            entries.append((lineno, rec["bits"].strip(), rec["ranks"].strip()))
    picker = _Picker(anchor_configs(space) if anchors else [])
    for lineno, bits, ranks in entries:
        try:
            cfg = space.config(_values(bits, L, "bits"), _values(ranks, L, "ranks"))
        except QRBenchError as exc:
            raise QRBenchError(f"{p}:{lineno}: {exc}") from None
        picker.add(cfg)
    if not entries:
        raise QRBenchError(f"{p}: no configurations in the design file")
    return picker.configs


def make_design(
    name: str,
    space: SearchSpace,
    n: int,
    seed: int = 0,
    *,
    memory_model: "MemoryModel | None" = None,
    importance_q: Sequence[float] | np.ndarray | None = None,
    importance_r: Sequence[float] | np.ndarray | None = None,
    path: str | os.PathLike | None = None,
    anchors: bool = True,
) -> list[QRConfig]:
    """The design ``name`` (one of :data:`DESIGNS`): ``n`` configurations (``file`` and ``anchors``: all listed)."""
    if name == "random":
        return random_design(space, n, seed, anchors=anchors)
    if name == "stratified":
        if memory_model is None:
            raise QRBenchError("the stratified design needs a memory model")
        return stratified_design(space, memory_model, n, seed, anchors=anchors)
    if name == "space-filling":
        return space_filling_design(space, n, seed, anchors=anchors)
    if name == "importance":
        if importance_q is None and importance_r is None:
            raise QRBenchError(
                "the importance design needs importances: --importance FILE (JSON with importance_q "
                "and importance_r, one number per block)"
            )
        return importance_design(space, n, seed, importance_q, importance_r, anchors=anchors)
    if name == "file":
        if path is None:
            raise QRBenchError("the file design needs a file: --design-file PATH (JSON lines or CSV of bits and ranks)")
        return file_design(space, path, anchors=anchors)
    if name == "anchors":
        return anchor_configs(space)
    raise QRBenchError(f"unknown design {name!r}; choose one of {', '.join(DESIGNS)}")
