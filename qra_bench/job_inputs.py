"""Stage 1 of the main job: a verified results table, the surrogate bound to it, and the table trials append to.

:func:`verify_table` checks the table (schema, content hash against its ``TABLE.md``, enough full-fidelity
trials); :func:`surrogate_for` loads the shipped surrogate (checking its binding to the table) or fits one
on the fly; :func:`work_table` gives the table real trials append to, the shipped one or a copy of it.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from qra_bench.errors import QRBenchError

__all__ = ["MIN_FULL_TRIALS", "TableCheck", "surrogate_for", "verify_table", "work_table"]

#: Full-fidelity (configuration, seed) trials below which the table cannot support a surrogate worth
#: searching: five-fold grouped cross-validation needs a handful of configurations per fold.
MIN_FULL_TRIALS = 10


@dataclass(frozen=True)
class TableCheck:
    """A verified table: its validate line, content hash, full-fidelity trials and what its card said."""

    path: Path
    validated: str
    content_hash: str
    n_full_trials: int
    card: str


def verify_table(path: str | Path, min_trials: int = MIN_FULL_TRIALS) -> TableCheck:
    """Validate the table's parts, check its hash against ``TABLE.md`` (when present) and count its trials.

    Raises :class:`QRBenchError` (one line for the user) when the table is missing, corrupt, described by a
    stale card, or has fewer than ``min_trials`` full-fidelity ok trials.
    """
    from qra_bench.table import ResultsTable
    from qra_bench.table_report import verify_card

    table = ResultsTable(path)
    collect_hint = f"collect one with `qra-bench collect --model tiny --task news --design stratified --out {path}`"
    if not table.exists or (table.path.is_dir() and not table.part_paths()):
        raise QRBenchError(f"no results table at {path}; {collect_hint}")
    validated = table.validate()  # TableError (a QRBenchError) names the first bad part
    content_hash = table.content_hash()
    card = verify_card(path)  # a changed part, an edited parts list or a stale card is a one-line TableError
    frame = table.read()
    full = frame[np.isclose(frame["fidelity_frac"].astype(float), 1.0) & frame["eval_loss"].notna()]
    n_full = int(full.groupby(["config_hash", "seed"]).ngroups) if len(full) else 0
    if n_full < min_trials:
        raise QRBenchError(
            f"table {path} has {n_full} full-fidelity trials; the main job needs at least {min_trials} "
            f"(--min-trials); {collect_hint}"
        )
    return TableCheck(Path(path), validated, content_hash, n_full, card)


def surrogate_for(
    shipped: Path,
    table: Path,
    out: Path,
    say: Callable[[str], None],
    seed: int = 0,
    table_arg: Optional[str] = None,
    params: Optional[dict] = None,
) -> tuple[Path, str]:
    """The surrogate directory to search with and a line saying where it came from: the shipped one at
    ``shipped`` (loaded, so its model sha256 and its binding to ``table`` are checked) or, if none is shipped,
    one fitted now into ``out/surrogate`` with ``seed`` and ``params``. ``table_arg`` is the table as the user
    named it, for the hint on how to ship the fitted one."""
    from qra_bench.surrogate.artifact import MANIFEST_FILE, SurrogateArtifact

    if (shipped / MANIFEST_FILE).is_file():
        artifact = SurrogateArtifact.load(shipped, table_path=table)  # refuses a table it was not fitted on
        r = artifact.manifest["metrics"]["random_5fold"]
        return shipped, (
            f"{shipped}: {artifact.manifest['model']['kind']} of {artifact.target}, bound to the table "
            f"hash (verified); random 5-fold R2 {r.get('r2', math.nan):.3f}, "
            f"Spearman {r.get('spearman', math.nan):.3f}"
        )
    from qra_bench.surrogate.fit import fit_surrogate

    fitted = out / "surrogate"
    if fitted.exists() and any(fitted.iterdir()):
        raise QRBenchError(f"{fitted} already holds a surrogate; give the run a fresh --out folder")
    say(f"  no surrogate at {shipped}: fitting an xgb surrogate of eval_loss on the fly into {fitted}")
    t0 = time.perf_counter()
    artifact = fit_surrogate(table, target="eval_loss", model="xgb", out=fitted, seed=seed, params=params)
    r = artifact.manifest["metrics"]["random_5fold"]
    return fitted, (
        f"{fitted}: NOT SHIPPED, fitted on the fly in {time.perf_counter() - t0:.1f} s (xgb of eval_loss; "
        f"random 5-fold R2 {r.get('r2', math.nan):.3f}, Spearman {r.get('spearman', math.nan):.3f}); "
        f"ship one with `qra-bench fit --table {table_arg} --target eval_loss --out {shipped}`"
    )


def work_table(check: TableCheck, out: Path, append: bool) -> Path:
    """The table real trials append to: the shipped one (``append``) or a copy of its parts in ``out/table``."""
    if append:
        return check.path
    work = out / "table"
    if work.exists() and any(work.iterdir()):
        raise QRBenchError(f"{work} already holds a table; give the run a fresh --out folder")
    work.mkdir(parents=True, exist_ok=True)
    from qra_bench.table import ResultsTable

    for part in ResultsTable(check.path).part_paths():
        shutil.copy2(part, work / part.name)
    return work
