"""The results table's schema: its columns, the :class:`TrialRow` record and the rules rows and parts obey.

The column list lives in :data:`COLUMNS` (name, Arrow type, nullable, meaning with units); the Arrow
:data:`SCHEMA`, the :class:`TrialRow` record and ``docs/schema.md`` all agree with it (a test checks the
document). :mod:`qra_bench.table` reads and writes parts with it and re-exports every public name here.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Optional, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from qra_bench.errors import TableError

SCHEMA_VERSION = 1
#: Key of the Parquet schema metadata entry that marks a file as ours, and its version.
SCHEMA_METADATA_KEY = "qra_bench_schema"
#: The columns that identify one row; a table holds at most one row per key after deduplication.
KEY_COLUMNS: tuple[str, str, str] = ("config_hash", "seed", "fidelity")
STATUSES: tuple[str, str] = ("ok", "failed")
PART_GLOB = "part-*.parquet"

_REQ, _OPT = False, True  # the `nullable` flag, spelled for reading the column list below

#: (name, Arrow type, nullable, meaning with units). Nullable columns are those a failed trial may lack.
COLUMNS: tuple[tuple[str, pa.DataType, bool, str], ...] = (
    # identity
    (
        "config_hash",
        pa.string(),
        _REQ,
        "Canonical hash of the configuration (bits and ranks per block); the table key with seed and fidelity.",
    ),
    ("bits", pa.list_(pa.int8()), _REQ, "Quantization bit width of each block, in block order (bits per weight)."),
    ("ranks", pa.list_(pa.int16()), _REQ, "LoRA rank of each block, in block order (0 = no adapter)."),
    ("n_blocks", pa.int16(), _REQ, "Number of transformer blocks; the length of `bits` and `ranks`."),
    ("avg_bits", pa.float64(), _REQ, "Average bit width over the quantized weights (bits per weight)."),
    ("avg_rank", pa.float64(), _REQ, "Average LoRA rank over the blocks."),
    ("seed", pa.int64(), _REQ, "Seed of the trial (data order, LoRA initialization)."),
    ("fidelity", pa.int64(), _REQ, "Training steps completed at this checkpoint (optimizer steps)."),
    ("fidelity_frac", pa.float64(), _REQ, "`fidelity / max_steps`: fraction of the full run, in [0, 1]."),
    ("max_steps", pa.int64(), _REQ, "Training steps of the full run this checkpoint belongs to (optimizer steps)."),
    ("status", pa.string(), _REQ, "`ok` or `failed`."),
    (
        "error",
        pa.string(),
        _OPT,
        "For a failed trial: the exception type and message (required when `status` is `failed`).",
    ),
    # quality after fine-tuning
    (
        "eval_loss",
        pa.float64(),
        _OPT,
        "Task evaluation loss after fine-tuning (nats per target token); finite on every ok row.",
    ),
    ("accuracy", pa.float64(), _OPT, "Task held-out accuracy after fine-tuning (fraction in [0, 1])."),
    (
        "lm_loss",
        pa.float64(),
        _OPT,
        "Held-out language-modelling loss after fine-tuning (nats per token): retained capability.",
    ),
    (
        "train_loss",
        pa.float64(),
        _OPT,
        "Mean training loss over the last logging window before this checkpoint (nats per token).",
    ),
    ("extra_metrics", pa.string(), _OPT, "JSON object of any other metrics (name to number)."),
    # static proxies, before fine-tuning
    (
        "proxy_eval_loss",
        pa.float64(),
        _OPT,
        "Task evaluation loss of the quantized model before fine-tuning (nats per target token).",
    ),
    ("proxy_accuracy", pa.float64(), _OPT, "Task accuracy of the quantized model before fine-tuning (fraction)."),
    (
        "proxy_lm_loss",
        pa.float64(),
        _OPT,
        "Held-out LM loss of the quantized model before fine-tuning (nats per token).",
    ),
    (
        "proxy_recon_error",
        pa.float64(),
        _OPT,
        "Relative Frobenius error of the quantized weights, ||W - Q(W)|| / ||W|| over all quantized weights.",
    ),
    # memory
    ("mem_predicted_bytes", pa.int64(), _OPT, "Total training memory predicted by the MemoryModel (bytes)."),
    ("mem_predicted_weights_bytes", pa.int64(), _OPT, "Predicted storage of the quantized base weights (bytes)."),
    ("mem_breakdown", pa.string(), _OPT, "JSON object of the MemoryModel's itemized terms (term name to bytes)."),
    (
        "mem_measured_param_bytes",
        pa.int64(),
        _OPT,
        "Measured storage of every parameter and buffer of the model as trained (bytes).",
    ),
    ("mem_peak_rss_bytes", pa.int64(), _OPT, "Peak resident set size of the trial process (bytes)."),
    ("mem_cuda_peak_bytes", pa.int64(), _OPT, "Peak CUDA memory allocated by torch (bytes); null on CPU."),
    # time
    ("time_quantize_s", pa.float64(), _OPT, "Wall time to quantize the base model (seconds)."),
    ("time_proxy_s", pa.float64(), _OPT, "Wall time to measure the static proxies (seconds)."),
    ("time_train_s", pa.float64(), _OPT, "Wall time spent training up to this checkpoint (seconds)."),
    (
        "time_eval_s",
        pa.float64(),
        _OPT,
        "Wall time spent evaluating checkpoints up to and including this one (seconds).",
    ),
    (
        "time_total_s",
        pa.float64(),
        _OPT,
        "Wall time of the trial from its start to the end of this checkpoint's evaluation (seconds).",
    ),
    ("tokens_per_s", pa.float64(), _OPT, "Training throughput up to this checkpoint (tokens per second)."),
    # provenance
    ("model_name", pa.string(), _REQ, "Name of the base model."),
    ("model_sha256", pa.string(), _OPT, "SHA-256 of the base model's weights file (hex)."),
    ("task_name", pa.string(), _REQ, "Name of the fine-tuning task."),
    ("task_data_sha256", pa.string(), _OPT, "SHA-256 of the task's data (hex)."),
    ("backend", pa.string(), _REQ, "Quantization backend (e.g. `hqq`, `torchao`, `bnb`)."),
    (
        "quant_settings",
        pa.string(),
        _REQ,
        "JSON object of the quantization settings (group size, axis, compute dtype, ...).",
    ),
    (
        "trial_settings",
        pa.string(),
        _REQ,
        "JSON object of the trial settings (learning rate, batch size, sequence length, LoRA alpha, ...).",
    ),
    (
        "lib_versions",
        pa.string(),
        _REQ,
        "JSON object of library versions (torch, transformers, peft, hqq, torchao, bitsandbytes, numpy, pyarrow).",
    ),
    ("code_version", pa.string(), _REQ, "qra-bench version, with the git commit when run from a checkout."),
    ("host", pa.string(), _REQ, "Hostname of the machine that ran the trial."),
    ("device", pa.string(), _REQ, "`cpu` or the CUDA device name."),
    ("started_at", pa.string(), _REQ, "Start of the trial (ISO-8601, UTC)."),
    ("finished_at", pa.string(), _REQ, "End of this checkpoint's evaluation, or of the failure (ISO-8601, UTC)."),
    ("run_id", pa.string(), _REQ, "Identifier of the collection run that produced the row."),
    ("schema_version", pa.int16(), _REQ, f"Version of this schema ({SCHEMA_VERSION})."),
)

SCHEMA: pa.Schema = pa.schema(
    [pa.field(name, typ, nullable=nullable) for name, typ, nullable, _ in COLUMNS],
    metadata={SCHEMA_METADATA_KEY: str(SCHEMA_VERSION)},
)

_JSON_COLUMNS = frozenset({"extra_metrics", "mem_breakdown", "quant_settings", "trial_settings", "lib_versions"})
_TIME_COLUMNS = ("started_at", "finished_at")
_REQUIRED = tuple(name for name, _, nullable, _ in COLUMNS if not nullable)
_INT_RANGES = {pa.int8(): 2**7, pa.int16(): 2**15, pa.int64(): 2**63}


@dataclass(frozen=True, kw_only=True)
class TrialRow:
    """One row of the results table: a trial's outcome at one fidelity (checkpoint). See :data:`COLUMNS`."""

    # identity
    config_hash: str
    bits: tuple[int, ...]
    ranks: tuple[int, ...]
    n_blocks: int
    avg_bits: float
    avg_rank: float
    seed: int
    fidelity: int
    fidelity_frac: float
    max_steps: int
    status: str
    error: Optional[str] = None
    # quality after fine-tuning
    eval_loss: Optional[float] = None
    accuracy: Optional[float] = None
    lm_loss: Optional[float] = None
    train_loss: Optional[float] = None
    extra_metrics: Optional[str] = None
    # static proxies
    proxy_eval_loss: Optional[float] = None
    proxy_accuracy: Optional[float] = None
    proxy_lm_loss: Optional[float] = None
    proxy_recon_error: Optional[float] = None
    # memory (bytes)
    mem_predicted_bytes: Optional[int] = None
    mem_predicted_weights_bytes: Optional[int] = None
    mem_breakdown: Optional[str] = None
    mem_measured_param_bytes: Optional[int] = None
    mem_peak_rss_bytes: Optional[int] = None
    mem_cuda_peak_bytes: Optional[int] = None
    # time (seconds)
    time_quantize_s: Optional[float] = None
    time_proxy_s: Optional[float] = None
    time_train_s: Optional[float] = None
    time_eval_s: Optional[float] = None
    time_total_s: Optional[float] = None
    tokens_per_s: Optional[float] = None
    # provenance
    model_name: str
    model_sha256: Optional[str] = None
    task_name: str
    task_data_sha256: Optional[str] = None
    backend: str
    quant_settings: str
    trial_settings: str
    lib_versions: str
    code_version: str
    host: str
    device: str
    started_at: str
    finished_at: str
    run_id: str
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        # Lists are accepted for convenience; tuples keep the record hashable and immutable.
        for name in ("bits", "ranks"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))

    def to_dict(self) -> dict[str, Any]:
        """The row as plain Python values in schema order (numpy scalars become int/float, tuples lists)."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> "TrialRow":
        """A row from a mapping with every column (e.g. a record of :meth:`ResultsTable.read`)."""
        values = {}
        for name in SCHEMA.names:
            value = record[name]
            if name in ("bits", "ranks"):
                value = tuple(int(v) for v in value)
            elif value is not None and not isinstance(value, (str, tuple)) and pd.isna(value):
                value = None
            values[name] = _plain(value)
        return cls(**values)


def _plain(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _value_problem(field: pa.Field, value: Any) -> Optional[str]:
    """Why ``value`` does not fit ``field``, or None when it does."""
    if value is None:
        return None if field.nullable else "is null; the column is required"
    typ = field.type
    if pa.types.is_string(typ):
        return None if isinstance(value, str) else f"must be a str, got {type(value).__name__}"
    if pa.types.is_integer(typ):
        return _int_problem(typ, value)
    if pa.types.is_floating(typ):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return f"must be a number, got {type(value).__name__}"
        return None
    if pa.types.is_list(typ):
        if not isinstance(value, (tuple, list)):
            return f"must be a tuple of ints, got {type(value).__name__}"
        for item in value:
            problem = _int_problem(typ.value_type, item)
            if problem:
                return f"item {item!r} {problem}"
        return None
    raise AssertionError(f"no check for Arrow type {typ}")  # a column type added without a check


def _int_problem(typ: pa.DataType, value: Any) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return f"must be an int, got {type(value).__name__}"
    bound = _INT_RANGES[typ]
    if not -bound <= int(value) < bound:
        return f"is out of range for {typ} [{-bound}, {bound - 1}]"
    return None


def _row_problem(row: TrialRow) -> Optional[tuple[str, str]]:
    """(column, problem) for the first thing wrong with ``row``, or None."""
    for field in SCHEMA:
        problem = _value_problem(field, getattr(row, field.name, None))
        if problem:
            return field.name, problem
    if row.status not in STATUSES:
        return "status", f"is {row.status!r}; allowed: {', '.join(STATUSES)}"
    if row.status == "ok" and not math.isfinite(row.eval_loss if row.eval_loss is not None else math.nan):
        return "eval_loss", f"is {row.eval_loss!r}; an ok row needs a finite eval_loss"
    if row.status == "failed" and not row.error:
        return "error", "is empty; a failed row must say what failed"
    if not row.config_hash:
        return "config_hash", "is empty"
    if not (len(row.bits) == len(row.ranks) == row.n_blocks) or row.n_blocks < 1:
        return "n_blocks", f"is {row.n_blocks} but bits has {len(row.bits)} and ranks {len(row.ranks)} entries"
    if row.max_steps < 1:
        return "max_steps", f"is {row.max_steps}; must be >= 1"
    if not 0 <= row.fidelity <= row.max_steps:
        return "fidelity", f"is {row.fidelity}; must be in [0, max_steps={row.max_steps}]"
    if not 0.0 <= row.fidelity_frac <= 1.0:
        return "fidelity_frac", f"is {row.fidelity_frac}; must be in [0, 1]"
    if row.schema_version != SCHEMA_VERSION:
        return "schema_version", f"is {row.schema_version}; this qra-bench writes {SCHEMA_VERSION}"
    for name in _JSON_COLUMNS:
        text = getattr(row, name)
        if text is None:
            continue
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            return name, f"is not valid JSON ({exc})"
        if not isinstance(parsed, dict):
            return name, f"must be a JSON object, got {type(parsed).__name__}"
    for name in _TIME_COLUMNS:
        text = getattr(row, name)
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            return name, f"is {text!r}; expected an ISO-8601 UTC time such as 2025-01-31T12:00:00+00:00"
        offset = stamp.utcoffset()
        if offset is None or offset.total_seconds() != 0:
            return name, f"is {text!r}; times must be UTC (offset +00:00 or Z)"
    return None


def validate_rows(rows: Sequence[TrialRow]) -> None:
    """Raise :class:`TableError` naming the first row and column that break the schema's rules."""
    for index, row in enumerate(rows):
        if not isinstance(row, TrialRow):
            raise TableError(f"row {index}: expected a TrialRow, got {type(row).__name__}")
        problem = _row_problem(row)
        if problem:
            column, what = problem
            where = f"config {str(row.config_hash)[:16]}, seed {row.seed}, fidelity {row.fidelity}"
            raise TableError(f"row {index} ({where}): {column} {what}")


def rows_to_table(rows: Sequence[TrialRow]) -> pa.Table:
    """Validate ``rows`` and convert them to an Arrow table that conforms to :data:`SCHEMA`."""
    rows = list(rows)
    validate_rows(rows)
    return pa.Table.from_pylist([row.to_dict() for row in rows], schema=SCHEMA)


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (and {len(names) - limit} more)" if len(names) > limit else "")


def _schema_problem(schema: pa.Schema) -> Optional[str]:
    """Why a part's schema is not ours, or None. Nullability is checked on the data, not the declaration."""
    expected = {f.name: f for f in SCHEMA}
    got = {f.name: f for f in schema}
    missing = [n for n in expected if n not in got]
    unexpected = [n for n in got if n not in expected]
    wrong = [
        f"{n} is {got[n].type}, expected {expected[n].type}"
        for n in expected
        if n in got and not got[n].type.equals(expected[n].type)
    ]
    problems = []
    if missing:
        problems.append(f"missing columns {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected columns {_names(unexpected)}")
    if wrong:
        problems.append(f"wrong types: {_names(wrong, 4)}")
    if problems:
        return "foreign schema: " + "; ".join(problems)
    version = (schema.metadata or {}).get(SCHEMA_METADATA_KEY.encode())
    if version is None:
        return f"no '{SCHEMA_METADATA_KEY}' schema metadata: not written by qra-bench"
    if version != str(SCHEMA_VERSION).encode():
        return f"schema version {version.decode(errors='replace')}; this qra-bench reads version {SCHEMA_VERSION}"
    return None


def _content_problem(table: pa.Table) -> Optional[str]:
    """The first rule of the schema that the data of a part breaks, or None (vectorized checks)."""
    for name in _REQUIRED:
        nulls = table.column(name).null_count
        if nulls:
            return f"column {name} has {nulls} null values; it is required"
    status = table.column("status")
    bad = pc.invert(pc.is_in(status, value_set=pa.array(STATUSES)))
    if pc.any(bad).as_py():
        values = sorted(set(pc.filter(status, bad).to_pylist()))
        return f"status has values {_names([repr(v) for v in values], 4)}; allowed: {', '.join(STATUSES)}"
    ok = pc.equal(status, "ok")
    finite = pc.fill_null(pc.is_finite(table.column("eval_loss")), False)
    n_bad = pc.sum(pc.and_(ok, pc.invert(finite))).as_py() or 0
    if n_bad:
        return f"{n_bad} ok rows have a null or non-finite eval_loss"
    versions = set(pc.unique(table.column("schema_version")).to_pylist())
    if versions - {SCHEMA_VERSION}:
        return f"schema_version column holds {sorted(versions)}; the file metadata says {SCHEMA_VERSION}"
    return None


def schema_markdown() -> str:
    """The column table of ``docs/schema.md``: name, Arrow type, nullable, meaning with units."""
    lines = ["| column | type | nullable | meaning (units) |", "|---|---|---|---|"]
    for name, typ, nullable, meaning in COLUMNS:
        shown = f"list<{typ.value_type}>" if pa.types.is_list(typ) else {"double": "float64"}.get(str(typ), str(typ))
        lines.append(f"| `{name}` | `{shown}` | {'yes' if nullable else 'no'} | {meaning} |")
    return "\n".join(lines)
