"""The collector: a design (which configurations to run) times an executor -> rows of a results table.

Designs are pure functions of the search space and a seed that return ``list[QRConfig]``, deduplicated by
configuration hash, the anchor configurations first (every uniform configuration of the ladders: bits
2/3/4/8/16 times every rank):

``random``          uniform over the space.
``stratified``      binned by total training memory so that every bin between the smallest configuration
                    and fp16-lora is covered evenly, with extra density just below and above uniform-4bit
                    (the budgets people care about: uniform-4bit and 0.3-1.0 of fp16-lora).
``space-filling``   a Latin hypercube over the 2L rung positions, snapped to rungs.
``importance``      each block's rungs tilted towards high bits / ranks where its importance is high.
``file``            an explicit list (JSON lines or CSV of bits and ranks).
``anchors``         only the anchor configurations.

A *job* is one (configuration, seed). Every job runs one trial (:func:`qra_bench.trial.run_trial`) that
writes its rows, one per fidelity checkpoint, as its own part file of the table (:class:`ResultsTable`
parts are written atomically), so the driver never holds results and a crash at any moment loses at most
the trials that had not finished. A rerun of the same command resumes: a job is skipped when all its
``(config_hash, seed, fidelity)`` keys are already in the table as ok rows. A failed trial is recorded as
failed rows carrying its error and retried up to ``max_retries`` times; earlier failed attempts in the table
count, so the limit holds across restarts and a job whose attempts are used up is reported, never dropped.

Executors
---------
``local``   ``workers`` processes started with "spawn", each with its own torch thread count. They die with
            the driver (Linux ``PR_SET_PDEATHSIG``), so a ``kill -9`` of the driver leaves no orphan that
            could write a trial twice. Ctrl-C stops every worker, keeps what finished, exits with 130.
``dask``    ``distributed``: a ``LocalCluster(n_workers=workers, threads_per_worker=1)`` by default, or the
            scheduler at ``address``. The table directory and the model must be reachable from every worker
            (a shared file system), and qra-bench installed there.

A SLURM cluster through ``dask_jobqueue`` (``pip install qra-bench[dask]``): start the scheduler in one
long-lived Python process and give its address to the collector::

    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(queue="cpu", cores=4, processes=4, memory="16GB", walltime="04:00:00",
                           job_script_prologue=["source /path/to/qra-bench/.venv/bin/activate"])
    cluster.scale(jobs=8)             # 8 SLURM jobs x 4 single-threaded dask workers
    print(cluster.scheduler_address)  # e.g. tcp://10.0.0.5:8786
    input("scheduler running; press Enter to stop")

    $ qra-bench collect --executor dask --address tcp://10.0.0.5:8786 --design stratified --n 200 \\
          --seeds 0,1,2 --out /shared/tables/tiny-news

Each dask worker runs one trial at a time with ``--threads`` torch threads; ``processes`` x threads should
match the cores of a SLURM job.
"""

from __future__ import annotations

import csv
import ctypes
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import numpy as np

from qra_bench.defaults import DEFAULT_TASK
from qra_bench.errors import QRBenchError
from qra_bench.leases import JobClaims
from qra_bench.space import DEFAULT_BITS, DEFAULT_RANKS, QRConfig, SearchSpace

if TYPE_CHECKING:  # heavy (torch); imported where used so that a spawned worker can set threads first
    from qra_bench.arch import ArchSpec
    from qra_bench.memory import MemoryModel
    from qra_bench.trial import TrialSettings

__all__ = [
    "ANCHOR_BITS", "DESIGNS", "EXECUTORS", "CollectReport", "CollectSpec", "Job", "JobOutcome", "MemoryBin",
    "anchor_configs", "collect", "collect_space", "file_design", "importance_design", "load_importance",
    "make_design", "memory_bins", "random_design", "run_job", "space_filling_design", "stratified_design",
]

#: Bit widths of the anchor configurations (those on the space's bit ladder), each with every rank.
ANCHOR_BITS: tuple[int, ...] = (2, 3, 4, 8, 16)
DESIGNS: tuple[str, ...] = ("stratified", "random", "space-filling", "importance", "file", "anchors")
EXECUTORS: tuple[str, ...] = ("local", "dask")

log = logging.getLogger(__name__)


# =========================================================================================================
# Designs
# =========================================================================================================
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


def _fill(picker: _Picker, n: int, draw: Callable[[int], tuple[np.ndarray, np.ndarray]], space: SearchSpace,
          what: str) -> list[QRConfig]:
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


def importance_design(space: SearchSpace, n: int, seed: int = 0, importance_q: Sequence[float] | None = None,
                      importance_r: Sequence[float] | None = None, *, temperature: float = 3.0,
                      anchors: bool = True) -> list[QRConfig]:
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
        return (_tilted_rungs(rng, m, len(space.bits), zq, temperature),
                _tilted_rungs(rng, m, len(space.ranks), zr, temperature))

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
        raise QRBenchError(f"importance file {str(path)!r}: importance_q and importance_r must be lists of numbers") from None
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


def memory_bins(memory_model: "MemoryModel", n_bins: int = 8, focus_width: float = 0.05) -> tuple[list[MemoryBin], list[MemoryBin]]:
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
            main.append(MemoryBin(f"{edges[i] / fp16:.3f}-{edges[i + 1] / fp16:.3f}xfp16-lora", int(edges[i]),
                                  int(edges[i + 1]), closed))
    if hi_all > fp16 or not main:
        main.append(MemoryBin("above fp16-lora", max(b, lo_all), hi_all, closed=True))
    width = max(1, int(focus_width * (hi_all - lo_all)))
    focus = [MemoryBin("just below uniform-4bit", u4 - width, u4, closed=True),
             MemoryBin("just above uniform-4bit", u4 + 1, u4 + 1 + width)]
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


def stratified_design(space: SearchSpace, memory_model: "MemoryModel", n: int, seed: int = 0, *, n_bins: int = 8,
                      focus_share: float = 0.25, focus_width: float = 0.05, anchors: bool = True) -> list[QRConfig]:
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
            cfg = memory_model.repair(space.from_indices(bit_idx[i], rank_idx[i]), max(1, b.hi - (not b.closed)),
                                      importance_q=rng.random(space.n_blocks), importance_r=rng.random(space.n_blocks))
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
                raise QRBenchError(f"{p}:{lineno}: needs an object with keys 'bits' and 'ranks', got {line.strip()[:80]!r}")
            entries.append((lineno, rec["bits"], rec["ranks"]))
    else:
        lines = [(i, line) for i, line in enumerate(text.splitlines(), start=1)
                 if line.strip() and not line.lstrip().startswith("#")]
        reader = csv.DictReader([line for _, line in lines])
        if reader.fieldnames is None or not {"bits", "ranks"} <= {f.strip() for f in reader.fieldnames}:
            raise QRBenchError(f"{p}: a CSV design needs a header with 'bits' and 'ranks' columns, got {reader.fieldnames}")
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


def make_design(name: str, space: SearchSpace, n: int, seed: int = 0, *, memory_model: "MemoryModel | None" = None,
                importance_q: Sequence[float] | None = None, importance_r: Sequence[float] | None = None,
                path: str | os.PathLike | None = None, anchors: bool = True) -> list[QRConfig]:
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
            raise QRBenchError("the importance design needs importances: --importance FILE (JSON with importance_q "
                               "and importance_r, one number per block)")
        return importance_design(space, n, seed, importance_q, importance_r, anchors=anchors)
    if name == "file":
        if path is None:
            raise QRBenchError("the file design needs a file: --design-file PATH (JSON lines or CSV of bits and ranks)")
        return file_design(space, path, anchors=anchors)
    if name == "anchors":
        return anchor_configs(space)
    raise QRBenchError(f"unknown design {name!r}; choose one of {', '.join(DESIGNS)}")


# =========================================================================================================
# Jobs and the worker function
# =========================================================================================================
@dataclass(frozen=True)
class Job:
    """One trial to run: a configuration and a seed, and its attempt number (1 = first, across restarts)."""

    config: QRConfig
    seed: int
    attempt: int
    model: str
    task: str
    settings: "TrialSettings"
    out: str

    @property
    def label(self) -> str:
        return f"config {self.config.hash[:12]} seed {self.seed}"


@dataclass(frozen=True)
class JobOutcome:
    """What a worker reports back: no rows, only the status and times (seconds).

    status : ``ok``, ``failed`` (the trial raised; failed rows written), ``crashed`` (the worker could not
        run or record it; no rows written) or ``setup`` (the model or task could not be loaded).
    """

    config_hash: str
    seed: int
    attempt: int
    status: str
    trial_s: float
    pid: int
    error: Optional[str] = None
    part: Optional[str] = None


_CONTEXT: dict[tuple[str, str], tuple[Any, Any]] = {}


def _context(model: str, task: str) -> tuple[Any, Any]:
    """The base model and task data, loaded once per process."""
    key = (model, task)
    if key not in _CONTEXT:
        from qra_bench.models import load_base
        from qra_bench.tasks import load_task

        base = load_base(model)
        _CONTEXT[key] = (base, load_task(task, base.tokenizer))
    return _CONTEXT[key]


def _with_metrics(text: Optional[str], **values: float) -> str:
    data = json.loads(text) if text else {}
    data.update(values)
    return json.dumps(data)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]


def run_job(job: Job) -> JobOutcome:
    """Run one trial and append its rows (ok or failed) to ``job.out``; return a small summary.

    Module-level and picklable: the local pool and Dask workers both call it. The base model and task are
    loaded once per process. A trial that raises is recorded as failed rows with the traceback's last lines;
    only a failure to load the model or task, or to write the table, is reported without rows.
    """
    from qra_bench.provenance import utc_now_iso

    pid = os.getpid()
    try:
        base, data = _context(job.model, job.task)
    except Exception as exc:  # every job of this process would fail the same way: stop the run
        return JobOutcome(job.config.hash, job.seed, job.attempt, "setup", 0.0, pid,
                          error=f"{_one_line(exc)} (loading model {job.model!r} and task {job.task!r} on pid {pid})")
    from qra_bench.table import ResultsTable
    from qra_bench.trial import failed_rows, run_trial

    table = ResultsTable(job.out)
    started_at, t0 = utc_now_iso(), time.perf_counter()
    tag = {"worker_pid": pid, "attempt": job.attempt}
    try:
        result = run_trial(base, data, job.config, job.seed, job.settings)
    except Exception as exc:
        seconds = time.perf_counter() - t0
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        tb = "".join(traceback.format_tb(exc.__traceback__)[-3:])
        rows = failed_rows(base, data, job.config, job.seed, job.settings, f"{error}\n{tb}", started_at, seconds).rows
        rows = [replace(r, extra_metrics=_with_metrics(r.extra_metrics, **tag)) for r in rows]
        part = table.append(rows)
        return JobOutcome(job.config.hash, job.seed, job.attempt, "failed", seconds, pid, error=error[:500], part=str(part))
    rows = [replace(r, extra_metrics=_with_metrics(r.extra_metrics, **tag)) for r in result.rows]
    part = table.append(rows)
    return JobOutcome(job.config.hash, job.seed, job.attempt, "ok", float(result.final.time_total_s or 0.0), pid,
                      part=str(part))


# =========================================================================================================
# Spec, report, planning
# =========================================================================================================
@dataclass(frozen=True, kw_only=True)
class CollectSpec:
    """One collection run (hashable; a rerun of the same spec resumes it).

    Parameters
    ----------
    out : table directory the rows are appended to.
    model, task : base model (name or local directory) and task name, as for ``qra-bench trial``.
    design, n, design_seed, design_file, importance_file, anchors : which configurations (see ``make_design``).
    seeds : every configuration runs once per seed.
    settings : trial recipe (default :class:`TrialSettings`); its ``threads`` is replaced by ``threads``.
    workers : worker processes (local) or LocalCluster workers (dask without ``address``).
    threads : torch CPU threads per worker.
    executor, address : ``local`` or ``dask``; a dask scheduler address (``tcp://host:8786``) or None for a
        LocalCluster.
    max_retries : a failed trial is run again up to this many times (earlier runs' attempts count).
    """

    out: str
    model: str = "tiny"
    task: str = DEFAULT_TASK
    design: str = "stratified"
    n: int = 200
    seeds: tuple[int, ...] = (0,)
    settings: Optional["TrialSettings"] = None
    workers: int = 1
    threads: int = 1
    executor: str = "local"
    address: Optional[str] = None
    max_retries: int = 2
    design_seed: int = 0
    design_file: Optional[str] = None
    importance_file: Optional[str] = None
    anchors: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", str(self.out))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if self.design not in DESIGNS:
            raise QRBenchError(f"unknown design {self.design!r}; choose one of {', '.join(DESIGNS)}")
        if self.executor not in EXECUTORS:
            raise QRBenchError(f"unknown executor {self.executor!r}; choose one of {', '.join(EXECUTORS)}")
        if self.address and self.executor != "dask":
            raise QRBenchError("--address is a dask scheduler address; it needs --executor dask")
        for name in ("n", "workers", "threads"):
            if getattr(self, name) < 1:
                raise QRBenchError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_retries < 0:
            raise QRBenchError(f"max-retries must be >= 0, got {self.max_retries}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise QRBenchError(f"seeds must be distinct and at least one, got {list(self.seeds)}")


@dataclass(frozen=True)
class CollectReport:
    """Counts of jobs (configuration x seed) and times (seconds) of one collection run.

    done : finished ok in this run. failed : no ok rows and every attempt used (``failed_before`` of them
    already in earlier runs). skipped : already complete in the table. pending : not finished (interrupted).
    failed_attempts : failed attempts in this run, retried or not. wall_s : the collector's wall time.
    trial_s : sum of this run's trials' own ``time_total_s`` (failed attempts included).
    """

    out: str
    n_jobs: int
    done: int
    failed: int
    failed_before: int
    skipped: int
    pending: int
    failed_attempts: int
    wall_s: float
    trial_s: float
    interrupted: bool = False
    failures: tuple[str, ...] = ()

    def summary(self) -> str:
        head = "interrupted" if self.interrupted else "collected"
        failed = f"{self.failed} failed" + (f" ({self.failed_before} in earlier runs)" if self.failed_before else "")
        text = (f"{head}: {self.n_jobs} jobs: {self.done} done, {failed}, {self.skipped} skipped (already in the table), "
                f"{self.pending} pending; {self.failed_attempts} failed attempts; wall {self.wall_s:.1f} s, "
                f"trials {self.trial_s:.1f} s -> {self.out}")
        if self.interrupted:
            text += "; rerun the same command to resume"
        return text


def collect_space(arch: "ArchSpec", backend: str) -> SearchSpace:
    """The collector's space: the default ladders, bits restricted to what ``backend`` can store."""
    from qra_bench.memory import supported_bits

    allowed = supported_bits(backend)
    return SearchSpace(arch.n_blocks, bits=tuple(b for b in DEFAULT_BITS if b in allowed), ranks=DEFAULT_RANKS)


def _arch_for(model: str) -> "ArchSpec":
    """The architecture of a base model from its config alone (no weights are loaded)."""
    from qra_bench.arch import ArchSpec, list_presets, load_arch
    from qra_bench.models import MODELS

    if model in MODELS and model in list_presets():
        return load_arch(model)
    path = Path(model)
    if path.is_dir() and (path / "config.json").is_file():
        return ArchSpec.from_json(path / "config.json", name=str(path))
    raise QRBenchError(f"unknown model {model!r}; use one of {list(MODELS)} or a local transformers model directory")


def _normalized_settings(text: str) -> dict:
    data = json.loads(text)
    data.pop("threads", None)  # a per-worker choice: does not change results
    return data


def _check_table_matches(frame, spec: CollectSpec, settings: "TrialSettings") -> None:
    """Refuse to resume into a table whose rows come from another model, task or trial recipe."""
    if frame.empty:
        return
    # A local model directory is named by the path it was given as; compare the last component only, so
    # that a relative and an absolute path to it agree.
    got_models = {Path(m).name for m in frame["model_name"].unique()}
    if got_models != {Path(spec.model).name}:
        raise QRBenchError(f"table {spec.out} holds rows of model {sorted(got_models)}; this run uses {spec.model!r}. "
                           "Use another --out")
    got_tasks = set(frame["task_name"].unique())
    if got_tasks != {spec.task}:
        raise QRBenchError(f"table {spec.out} holds rows of task {sorted(got_tasks)}; this run uses {spec.task!r}. "
                           "Use another --out")
    mine = _normalized_settings(settings.to_json())
    for text in frame["trial_settings"].unique():
        theirs = _normalized_settings(text)
        if theirs != mine:
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise QRBenchError(f"table {spec.out} holds rows of other trial settings (differing: {', '.join(diff)}); "
                               "a resume must use the same recipe. Use another --out")


@dataclass(frozen=True)
class _Plan:
    jobs: list[Job]
    n_jobs: int
    skipped: int
    exhausted: list[str]


def plan_jobs(spec: CollectSpec, configs: Sequence[QRConfig], settings: "TrialSettings") -> _Plan:
    """The jobs still to run, seed-major, after reading the table once.

    A job is skipped when all its ``(hash, seed, fidelity)`` keys are ok rows of the table; its attempt
    number counts the failed attempts (distinct ``run_id`` of failed rows of the same hash, seed and
    ``max_steps``) already recorded; one that has used ``1 + max_retries`` attempts is not run again.
    """
    from qra_bench.table import ResultsTable

    table = ResultsTable(spec.out)
    steps = settings.checkpoints()
    ok_keys: set = set()
    attempts: dict[tuple[str, int], int] = {}
    if table.exists:
        frame = table.read(dedupe=False, include_failed=True)
        _check_table_matches(frame, spec, settings)
        ok = frame[frame["status"] == "ok"]
        ok_keys = set(zip(ok["config_hash"], ok["seed"].astype(int), ok["fidelity"].astype(int)))
        failed = frame[(frame["status"] == "failed") & (frame["max_steps"] == settings.max_steps)]
        if not failed.empty:
            counts = failed.groupby(["config_hash", "seed"])["run_id"].nunique()
            attempts = {(h, int(s)): int(c) for (h, s), c in counts.items()}
    jobs, skipped, exhausted = [], 0, []
    for seed in spec.seeds:
        for cfg in configs:
            if all((cfg.hash, seed, step) in ok_keys for step in steps):
                skipped += 1
                continue
            used = attempts.get((cfg.hash, seed), 0)
            if used >= 1 + spec.max_retries:
                exhausted.append(f"config {cfg.hash[:12]} seed {seed}: {used} failed attempts in earlier runs")
                continue
            jobs.append(Job(cfg, seed, used + 1, spec.model, spec.task, settings, spec.out))
    return _Plan(jobs, len(configs) * len(spec.seeds), skipped, exhausted)


class _Tracker:
    """Counts outcomes, decides retries, records failures a worker could not, drives the progress bar."""

    def __init__(self, spec: CollectSpec, n_run: int, progress: bool) -> None:
        from tqdm.auto import tqdm

        self.spec = spec
        self.done = self.failed = self.failed_attempts = 0
        self.trial_s = 0.0
        self.failures: list[str] = []
        self.bar = tqdm(total=n_run, disable=not progress, unit="trial", desc="collect", dynamic_ncols=True,
                        file=sys.stderr)
        self._postfix()

    def _postfix(self) -> None:
        self.bar.set_postfix_str(f"done={self.done} failed={self.failed} retries={self.failed_attempts - self.failed}",
                                 refresh=False)

    def record_crash(self, job: Job, error: str, seconds: float) -> None:
        """Failed rows for an attempt whose worker died or could not write: written here by the driver."""
        from qra_bench.provenance import utc_now_iso
        from qra_bench.table import ResultsTable
        from qra_bench.trial import failed_rows

        base, data = _context(job.model, job.task)
        rows = failed_rows(base, data, job.config, job.seed, job.settings, error, utc_now_iso(), seconds).rows
        rows = [replace(r, extra_metrics=_with_metrics(r.extra_metrics, attempt=job.attempt)) for r in rows]
        ResultsTable(job.out).append(rows)

    def handle(self, job: Job, outcome: JobOutcome) -> Optional[Job]:
        """Count ``outcome``; return the job's next attempt when it failed and may be retried."""
        if outcome.status == "setup":
            raise QRBenchError(f"a worker could not start: {outcome.error}")
        self.trial_s += outcome.trial_s
        if outcome.status == "ok":
            self.done += 1
            self._postfix()
            self.bar.update(1)
            return None
        if outcome.status == "crashed":
            self.record_crash(job, outcome.error or "crashed", outcome.trial_s)
        self.failed_attempts += 1
        log.info("%s attempt %d failed: %s", job.label, job.attempt, outcome.error)
        if job.attempt < 1 + self.spec.max_retries:
            self._postfix()
            self.bar.refresh()
            return replace(job, attempt=job.attempt + 1)
        self.failed += 1
        self.failures.append(f"{job.label}: {job.attempt} failed attempts, last: {(outcome.error or '').splitlines()[0][:200]}")
        self._postfix()
        self.bar.update(1)
        return None

    def close(self) -> None:
        self.bar.close()


# =========================================================================================================
# Executors
# =========================================================================================================
def _set_thread_env(threads: int) -> None:
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)


def _die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when the driver dies (Linux), so no orphan writes a trial twice."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the driver died before prctl took effect
        os._exit(1)


def _local_worker(conn, threads: int, parent_pid: int) -> None:
    """A local worker process: receive jobs until None or the driver is gone; send back outcomes."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    _set_thread_env(threads)
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            outcome = run_job(job)
        except Exception as exc:  # the table could not be written: the driver records the attempt
            outcome = JobOutcome(job.config.hash, job.seed, job.attempt, "crashed", 0.0, os.getpid(),
                                 error=f"{_one_line(exc)}\n{traceback.format_exc(limit=3)}")
        try:
            conn.send(outcome)
        except (EOFError, OSError):
            return


class _Worker:
    def __init__(self, ctx, threads: int) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_local_worker, args=(child, threads, os.getpid()), daemon=True,
                                   name="qra-bench-worker")
        self.process.start()
        child.close()
        self.job: Optional[Job] = None
        self.started = 0.0

    def send(self, job: Job) -> None:
        self.job, self.started = job, time.perf_counter()
        self.conn.send(job)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit; terminate it when it is busy or does not exit at once.

        An idle worker holds nothing unsaved, so it is not waited for: the interpreter's own teardown with
        torch loaded takes over a second, which would be collector overhead.
        """
        if self.process.is_alive() and self.job is None:
            try:
                self.conn.send(None)
            except (OSError, ValueError):
                pass
            self.process.join(0.2)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout)
        self.conn.close()


def _run_local(spec: CollectSpec, jobs: Sequence[Job], tracker: _Tracker, claims: "JobClaims") -> None:
    """Run ``jobs`` on ``spec.workers`` spawned processes; on any exit (Ctrl-C included) stop every worker.

    A job is claimed (leased) just before it is sent to a worker and released when it is over."""
    ctx = multiprocessing.get_context("spawn")
    pending = deque(jobs)
    workers = [_Worker(ctx, spec.threads) for _ in range(min(spec.workers, len(pending)))]
    try:
        while pending or claims.waiting or any(w.job is not None for w in workers):
            for w in workers:
                if w.job is None and w.process.is_alive():
                    job = claims.next(pending)
                    if job is not None:
                        w.send(job)
            busy = [w for w in workers if w.job is not None]
            multiprocessing.connection.wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=2.0)
            for i, w in enumerate(workers):
                if w.job is None:
                    if not w.process.is_alive() and pending:
                        w.stop()
                        workers[i] = _Worker(ctx, spec.threads)
                    continue
                outcome = None
                try:
                    if w.conn.poll():
                        outcome = w.conn.recv()
                except (EOFError, OSError):
                    outcome = None
                if outcome is None and w.process.is_alive():
                    continue
                job, w.job = w.job, None
                if outcome is None:  # died mid-trial (e.g. killed by the OOM killer): the driver records it
                    code = w.process.exitcode
                    outcome = JobOutcome(job.config.hash, job.seed, job.attempt, "crashed", time.perf_counter() - w.started,
                                         -1, error=f"worker process died (exit code {code}) while running the trial")
                    w.stop()
                    workers[i] = _Worker(ctx, spec.threads)
                retry = tracker.handle(job, outcome)
                if retry is not None:
                    pending.append(retry)
                else:
                    claims.release(job)
    finally:
        for w in workers:
            if w.job is not None:
                w.process.terminate()
        for w in workers:
            w.stop()


def run_job_once(job: Job) -> JobOutcome:
    """:func:`run_job`, unless the job's ok rows are already in the table (read from new parts only).

    Dask runs a task again when its worker dies, even after the trial's part was written: the task's result
    lived on the dead worker. Under a lease no other collector runs the job, so ok rows mean this very
    task finished before; it is reported as done instead of being run twice.
    """
    from qra_bench.leases import TableWatch

    watch = TableWatch(Path(job.out))
    watch.refresh()
    if all((job.config.hash, job.seed, step) in watch.ok for step in job.settings.checkpoints()):
        return JobOutcome(job.config.hash, job.seed, job.attempt, "ok", 0.0, os.getpid(),
                          error="already in the table: a rerun of a task whose worker died after writing it")
    return run_job(job)


def _run_dask(spec: CollectSpec, jobs: Sequence[Job], tracker: _Tracker, claims: "JobClaims") -> None:
    """Run ``jobs`` on a Dask cluster; on any exit (Ctrl-C included) cancel what is left and close the client.

    Jobs are claimed (leased) as they are submitted, one more than there are workers, so another collector
    on the same table takes the rest. A worker that dies mid-trial wrote nothing (parts are atomic); the
    scheduler runs its trial again on another worker, and a trial that still cannot finish is recorded
    as crashed here and retried like any failed attempt."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise QRBenchError("--executor dask needs the 'distributed' package: pip install distributed") from None

    cluster = None
    if spec.address:
        try:
            client = Client(spec.address, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise QRBenchError(f"cannot reach the dask scheduler at {spec.address!r}: {_one_line(exc)}") from None
    else:
        cluster = LocalCluster(n_workers=spec.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)
        client = Client(cluster)
    futures: dict = {}
    try:
        # A LocalCluster starts in seconds; a batch-queue cluster may wait for its jobs, so no time limit there.
        client.wait_for_workers(spec.workers, timeout=300) if cluster is not None else client.wait_for_workers(1)
        pending = deque(jobs)
        stream = as_completed()
        window = max(1, len(client.scheduler_info().get("workers", {}))) + 1

        def top_up() -> None:
            while len(futures) < window:
                job = claims.next(pending)
                if job is None:
                    return
                new = client.submit(run_job_once, job, pure=False)
                futures[new] = job
                stream.add(new)

        top_up()
        while futures or pending or claims.waiting:
            if not futures:  # every job left is held by another collector: wait for it to finish or die
                time.sleep(claims.poll_s)
                top_up()
                continue
            future = next(stream)
            job = futures.pop(future)
            try:
                outcome = future.result()
            except Exception as exc:  # the worker died (KilledWorker) or could not write: record it here
                outcome = JobOutcome(job.config.hash, job.seed, job.attempt, "crashed", 0.0, -1,
                                     error=f"dask: {_one_line(exc)}")
            future.release()
            retry = tracker.handle(job, outcome)
            if retry is not None:
                pending.appendleft(retry)
            else:
                claims.release(job)
            top_up()
    finally:
        if futures:  # interrupted or failed: running trials are abandoned, never half-written (atomic parts)
            client.cancel(list(futures))
        client.close()
        if cluster is not None:
            cluster.close()


# =========================================================================================================
# The driver
# =========================================================================================================
def design_for(spec: CollectSpec, settings: "TrialSettings") -> list[QRConfig]:
    """The configurations of ``spec``'s design for its model's architecture and the trial's backend."""
    from qra_bench.memory import MemoryModel, MemorySettings, storage_layout

    arch = _arch_for(spec.model)
    space = collect_space(arch, settings.quant.backend)
    memory_model = None
    if spec.design == "stratified":
        # Bins in 16-bit storage (MemorySettings' defaults) with the trial's layout: one binning for every
        # device and dtype a trial may run in, so a design (and its resume) does not depend on the machine.
        memory_model = MemoryModel(arch, MemorySettings(backend=storage_layout(settings.quant), group_size=settings.quant.group_size),
                                   space)
    q = r = None
    if spec.importance_file:
        q, r = load_importance(spec.importance_file, arch.n_blocks)
    return make_design(spec.design, space, spec.n, spec.design_seed, memory_model=memory_model, importance_q=q,
                       importance_r=r, path=spec.design_file, anchors=spec.anchors)


def collect(spec: CollectSpec, progress: bool = True) -> CollectReport:
    """Run ``spec``'s design x seeds into the table ``spec.out``, resuming what is already there.

    Returns a :class:`CollectReport`; on Ctrl-C the workers are stopped, finished trials stay in the table and
    the report has ``interrupted=True`` (the CLI then exits with status 130).
    """
    from qra_bench.trial import TrialSettings

    t0 = time.perf_counter()
    settings = replace(spec.settings or TrialSettings(), threads=spec.threads)
    configs = design_for(spec, settings)
    plan = plan_jobs(spec, configs, settings)
    tracker = _Tracker(spec, len(plan.jobs), progress)
    interrupted = False
    claims = None
    try:
        if plan.jobs:
            # Leases let several collectors share the table: each job runs in one of them only.
            claims = JobClaims(spec.out, settings.checkpoints(), settings.max_steps, spec.max_retries)
            (_run_local if spec.executor == "local" else _run_dask)(spec, plan.jobs, tracker, claims)
    except KeyboardInterrupt:  # the executor has stopped its workers; finished trials are in the table
        interrupted = True
    finally:
        tracker.close()
        if claims is not None:
            claims.close()
    elsewhere = len(claims.done_elsewhere) if claims else 0
    exhausted = plan.exhausted + (claims.exhausted if claims else [])
    unfinished = len(plan.jobs) - tracker.done - tracker.failed - elsewhere - (len(exhausted) - len(plan.exhausted))
    return CollectReport(
        out=spec.out, n_jobs=plan.n_jobs, done=tracker.done, failed=tracker.failed + len(exhausted),
        failed_before=len(exhausted), skipped=plan.skipped + elsewhere, pending=unfinished,
        failed_attempts=tracker.failed_attempts, wall_s=time.perf_counter() - t0, trial_s=tracker.trial_s,
        interrupted=interrupted, failures=tuple(exhausted + tracker.failures),
    )
