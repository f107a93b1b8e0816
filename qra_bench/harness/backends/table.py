"""The table backend: a results table's ok rows indexed by configuration and fidelity and answered by lookup,
and the tables a benchmark can be named by."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np
import pandas as pd

from qra_bench.data import PathLike, table_location, tables_dir
from qra_bench.errors import QRBenchError
from qra_bench.harness.results import FRAC_DIGITS, Answer, CostModel, NotInTableError
from qra_bench.space import QRConfig

if TYPE_CHECKING:
    from qra_bench.table_schema import TrialRow

__all__ = ["TableIndex", "available_benchmarks", "resolve_table"]


def available_benchmarks(root: Optional[PathLike] = None) -> list[str]:
    """Names of the tables under the data root (:func:`qra_bench.data.tables_dir`: ``$QRA_BENCH_DATA/tables``,
    else the checkout's ``datasets_cache/tables``), directories and compacted ``<name>.parquet`` files."""
    tables = tables_dir(root)
    if not tables.is_dir():
        return []
    return sorted(
        {
            p.name if p.is_dir() else p.stem
            for p in tables.iterdir()
            if p.is_dir() or (p.is_file() and p.suffix == ".parquet")
        }
    )


def resolve_table(name_or_path: PathLike, root: Optional[PathLike] = None) -> tuple[str, Path]:
    """``(name, table path)``: an existing path (directory or compacted file) is taken as it is, a name is looked
    up under the data root (:func:`qra_bench.data.table_location`)."""
    path = Path(name_or_path)
    if path.is_dir() or (path.is_file() and path.suffix == ".parquet"):
        return (path.resolve().name if path.is_dir() else path.stem), path
    shipped = table_location(str(name_or_path), root)
    if shipped.exists():
        return str(name_or_path), shipped
    names = available_benchmarks(root)
    raise QRBenchError(
        f"unknown benchmark {str(name_or_path)!r}: no table directory there nor at {shipped}; "
        f"available: {', '.join(names) if names else 'none'} (or give a table directory)"
    )


class TableIndex:
    """The table's ok rows as arrays, keyed by (config hash, fidelity fraction); live rows are added in place,
    so every benchmark sharing the index sees them. ``fidelities`` are the table's own (as loaded)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.fidelities = tuple(sorted(set(frame["fidelity_frac"].round(FRAC_DIGITS).astype(float))))
        self.hashes = frame["config_hash"].astype(str).tolist()
        self.configs = [QRConfig(bits=b, ranks=r) for b, r in zip(frame["bits"], frame["ranks"])]
        self.seed = frame["seed"].to_numpy(dtype=np.int64)
        self.frac = frame["fidelity_frac"].to_numpy(dtype=float).round(FRAC_DIGITS)
        self.acc = frame["accuracy"].to_numpy(dtype=float, na_value=np.nan)
        self.loss = frame["eval_loss"].to_numpy(dtype=float, na_value=np.nan)
        self.time = frame["time_total_s"].to_numpy(dtype=float, na_value=np.nan)
        self.rows: dict[tuple[str, float], list[int]] = {}
        for i, (h, f) in enumerate(zip(self.hashes, self.frac)):
            self.rows.setdefault((h, float(f)), []).append(i)

    def add(self, rows: Sequence["TrialRow"]) -> None:
        """Index the ok ones of ``rows`` (a live trial's)."""
        ok = [r for r in rows if r.status == "ok"]
        start = len(self.hashes)
        nan = math.nan
        self.hashes += [r.config_hash for r in ok]
        self.configs += [QRConfig(bits=r.bits, ranks=r.ranks) for r in ok]
        self.seed = np.concatenate([self.seed, np.asarray([r.seed for r in ok], dtype=np.int64)])
        self.frac = np.concatenate([self.frac, np.round([float(r.fidelity_frac) for r in ok], FRAC_DIGITS)])
        self.acc = np.concatenate([self.acc, [nan if r.accuracy is None else r.accuracy for r in ok]])
        self.loss = np.concatenate([self.loss, [nan if r.eval_loss is None else r.eval_loss for r in ok]])
        self.time = np.concatenate([self.time, [nan if r.time_total_s is None else r.time_total_s for r in ok]])
        for i in range(start, len(self.hashes)):
            self.rows.setdefault((self.hashes[i], float(self.frac[i])), []).append(i)

    @property
    def n_configs(self) -> int:
        """Distinct configurations indexed."""
        return len({h for (h, _) in self.rows})

    def configs_at(self, fidelity: float) -> dict[str, QRConfig]:
        """Hash -> configuration of every configuration with a row at ``fidelity``."""
        f = round(float(fidelity), FRAC_DIGITS)
        return {h: self.configs[rows[0]] for (h, frac), rows in self.rows.items() if frac == f}

    def answer(self, config: QRConfig, fidelity: float, seed: int, *, name: str, cost_model: CostModel) -> Answer:
        """The rows of ``config`` at ``fidelity`` and ``seed``, else the mean over the seeds the table has; a row
        without a time costs the ``cost_model``'s prediction.

        Raises
        ------
        NotInTableError
            No row of ``config`` at ``fidelity`` (``name`` is the table's, for the message).
        """
        f = round(fidelity, FRAC_DIGITS)
        rows = self.rows.get((config.hash, f))
        if not rows:
            if f not in self.fidelities:
                raise NotInTableError(
                    f"fidelity {fidelity:g} is not in table {name!r}; its fidelities: "
                    f"{', '.join(f'{x:g}' for x in self.fidelities)}"
                )
            n = sum(1 for (_, frac) in self.rows if frac == f)
            raise NotInTableError(
                f"configuration {config} (hash {config.hash[:12]}) is not in table {name!r} ({n} configurations "
                f"at fidelity {fidelity:g}): the table backend answers only table configurations; use backend "
                "'surrogate' or 'table+live', or a pool-based optimizer (Benchmark.pool)"
            )
        exact = [i for i in rows if self.seed[i] == seed]
        use = np.asarray(exact or rows)
        cost = float(np.nanmean(self.time[use])) if np.isfinite(self.time[use]).any() else math.nan
        kind = "measured"
        if not math.isfinite(cost):
            cost, kind = cost_model.seconds(fidelity), "predicted"
        return Answer(
            backend="table",
            accuracy=float(np.nanmean(self.acc[use])),
            eval_loss=float(np.nanmean(self.loss[use])),
            cost_s=cost,
            cost_kind=kind,
            seeds=tuple(sorted(int(s) for s in self.seed[use])),
            exact_seed=bool(exact),
        )
