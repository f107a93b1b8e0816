"""Fit a surrogate on a results table, measure its quality on named splits, and write the artifact.

:func:`fit_surrogate` reads the ok rows of a table, rebuilds the table's search space and memory model from
the recorded recipe (base model, backend, group size, device dtype; :mod:`qra_bench.surrogate.table_space`),
encodes every row, scores the chosen model on the splits of :mod:`qra_bench.surrogate.evaluate` (plus a
learning curve), fits it on all rows, and returns a :class:`~qra_bench.surrogate.artifact.SurrogateArtifact`
(saved when ``out`` is given).

Fidelity modes:

- ``"all"`` (default): every fidelity's rows train the model, with ``fidelity_frac`` as a feature; metrics
  are computed on the full-fidelity rows.
- ``"full"``: only full-fidelity rows (``fidelity_frac == 1``).
- ``"multi"``: multi-fidelity prediction. The target at full fidelity is predicted from the configuration
  *and* the observed target of the same (configuration, seed) at a low fidelity (``low_fidelity``, default
  the lowest fraction below 1 in the table), the last feature ``low_fidelity_<target>``. Use it to forecast a
  run's final result from its early checkpoint.

Importance priors enter through the two importance-weighted features. Given a priors JSON (keys
``importance_q``, ``importance_r``) they come from it; otherwise from a cached priors file of the table's base
model and task under ``datasets_cache/importance/`` (matched by model and task SHA-256); otherwise they are
zeros and those features are constant.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd

from qra_bench.errors import QRBenchError
from qra_bench.surrogate.artifact import ARTIFACT_FORMAT, ARTIFACT_VERSION, EncoderSpec, SurrogateArtifact
from qra_bench.surrogate.evaluate import (
    SurrogateData,
    group_kfold,
    high_memory_split,
    learning_curve,
    noise_floor,
    run_split,
    tau_noise_ceiling,
    top_decile_split,
)
from qra_bench.recipe import table_value
from qra_bench.surrogate.table_space import (
    memory_model,
    memory_settings,
    resolve_arch,
    rung_indices,
    table_space,
)

__all__ = [
    "FIDELITY_MODES",
    "SURROGATE_KINDS",
    "TARGETS",
    "TrainingSet",
    "default_out",
    "fit_surrogate",
    "make_estimator",
    "training_set",
]

#: Targets a surrogate can learn, and whether higher is better.
TARGETS: dict[str, bool] = {"accuracy": True, "eval_loss": False, "lm_loss": False}
SURROGATE_KINDS: tuple[str, ...] = ("xgb", "gp")
FIDELITY_MODES: tuple[str, ...] = ("all", "full", "multi")
PathLike = Union[str, os.PathLike]
#: Modules whose versions change a surrogate's numbers or files (import name: manifest key).
TRACKED = {
    "numpy": "numpy",
    "scipy": "scipy",
    "sklearn": "scikit-learn",
    "xgboost": "xgboost",
    "pandas": "pandas",
    "pyarrow": "pyarrow",
    "matplotlib": "matplotlib",
}


def _library_versions() -> dict[str, str]:
    """Versions of :data:`TRACKED`, read from the modules themselves (the xgboost wheel is named xgboost-cpu)."""
    import importlib

    return {
        key: str(getattr(importlib.import_module(module), "__version__", "unknown")) for module, key in TRACKED.items()
    }


def make_estimator(model: str, seed: int = 0, params: Optional[dict] = None):
    """An unfitted surrogate estimator: ``"xgb"`` (:class:`XGBEnsemble`) or ``"gp"`` (:class:`GPSurrogate`)."""
    params = dict(params or {})
    if model == "xgb":
        from qra_bench.surrogate.xgb import XGBEnsemble

        return XGBEnsemble(random_state=seed, **params)
    if model == "gp":
        from qra_bench.surrogate.gp import GPSurrogate

        return GPSurrogate(random_state=seed, **params)
    raise QRBenchError(f"unknown surrogate model {model!r}; allowed: {', '.join(SURROGATE_KINDS)}")


def default_out(table_path: PathLike, model: str) -> Path:
    """``<data root>/surrogates/<table name>/<model>/`` (:mod:`qra_bench.data`), where a benchmark of that table
    looks for it; the table name is its directory's name, or a compacted file's stem."""
    from qra_bench.data import surrogates_dir

    path = Path(table_path).resolve()
    return surrogates_dir() / (path.stem if path.suffix == ".parquet" else path.name) / model


# ---------------------------------------------------------------------------------------------------------
# Importance priors
# ---------------------------------------------------------------------------------------------------------
def _importance(
    frame: pd.DataFrame, n_blocks: int, importance: "Optional[PathLike] | tuple[Sequence[float], Sequence[float]]"
) -> tuple[np.ndarray, np.ndarray, str]:
    """``(importance_q, importance_r, source)``: from ``importance`` (a priors JSON, or the two arrays), a
    matching cached priors file, or zeros."""
    from qra_bench.collect import load_importance

    if isinstance(importance, tuple):
        q, r = (np.asarray(x, dtype=float) for x in importance)
        if q.shape != (n_blocks,) or r.shape != (n_blocks,):
            raise QRBenchError(f"importance arrays have shapes {q.shape} / {r.shape}; expected ({n_blocks},)")
        return q, r, "given arrays"
    if importance is not None:
        q, r = load_importance(importance, n_blocks)
        return q, r, str(importance)
    from qra_bench.corpora import CACHE_DIR

    model_name = str(frame["model_name"].iloc[0])
    task = str(frame["task_name"].iloc[0])
    model_sha = set(frame["model_sha256"].dropna())
    task_sha = set(frame["task_data_sha256"].dropna())
    for path in sorted((CACHE_DIR / "importance").glob(f"{model_name.replace('/', '_')}-{task}-*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if (
            data.get("model_sha256") in model_sha
            and data.get("task_sha256") in task_sha
            and len(data.get("importance_q", ())) == n_blocks
        ):
            return np.asarray(data["importance_q"], float), np.asarray(data["importance_r"], float), str(path)
    return np.zeros(n_blocks), np.zeros(n_blocks), "none (zeros)"


# ---------------------------------------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------------------------------------
def _check_choices(target: str, model: str, fidelity: str) -> None:
    if target not in TARGETS:
        raise QRBenchError(f"unknown target {target!r}; allowed: {', '.join(TARGETS)}")
    if model not in SURROGATE_KINDS:
        raise QRBenchError(f"unknown surrogate model {model!r}; allowed: {', '.join(SURROGATE_KINDS)}")
    if fidelity not in FIDELITY_MODES:
        raise QRBenchError(f"unknown fidelity mode {fidelity!r}; allowed: {', '.join(FIDELITY_MODES)}")


def _multi_fidelity_rows(frame: pd.DataFrame, target: str, low: Optional[float]) -> tuple[pd.DataFrame, float]:
    """Full-fidelity rows joined with the same (config, seed)'s target at the low fidelity (column ``low_obs``)."""
    fracs = sorted(set(frame["fidelity_frac"].round(6)) - {1.0})
    if not fracs:
        raise QRBenchError("fidelity 'multi' needs rows below full fidelity; the table has only fidelity_frac 1")
    low = fracs[0] if low is None else float(low)
    if not any(math.isclose(low, f) for f in fracs):
        raise QRBenchError(f"low fidelity {low:g} not in the table; allowed: {', '.join(f'{f:g}' for f in fracs)}")
    lows = frame[np.isclose(frame["fidelity_frac"], low)][["config_hash", "seed", target]]
    full = frame[np.isclose(frame["fidelity_frac"], 1.0)]
    joined = full.merge(lows.rename(columns={target: "low_obs"}), on=["config_hash", "seed"], how="inner")
    if joined.empty:
        raise QRBenchError(f"no (configuration, seed) has both a row at fidelity {low:g} and one at full fidelity")
    return joined.sort_values(["config_hash", "seed"], kind="stable").reset_index(drop=True), low


@dataclass(frozen=True)
class TrainingSet:
    """A table's rows ready for a surrogate: the encoder that made them, the data, and where they came from."""

    encoder_spec: EncoderSpec
    feature_names: list[str]
    data: SurrogateData
    content_hash: str
    table: dict  # path, model_name, task_name, backend, device
    memory_check: dict
    importance_source: str


def training_set(
    table_path: PathLike,
    target: str = "accuracy",
    fidelity: str = "all",
    importance: "Optional[PathLike] | tuple[Sequence[float], Sequence[float]]" = None,
    arch: Optional[str] = None,
    low_fidelity: Optional[float] = None,
) -> TrainingSet:
    """Read the ok rows of a table with a finite ``target`` and encode them (see :func:`fit_surrogate`)."""
    from qra_bench.table import ResultsTable

    if target not in TARGETS:
        raise QRBenchError(f"unknown target {target!r}; allowed: {', '.join(TARGETS)}")
    if fidelity not in FIDELITY_MODES:
        raise QRBenchError(f"unknown fidelity mode {fidelity!r}; allowed: {', '.join(FIDELITY_MODES)}")
    table = ResultsTable(table_path)
    if not table.exists:
        raise QRBenchError(f"no table at {table_path}")
    frame = table.read()
    content_hash = table.content_hash()
    frame = frame[frame[target].notna() & np.isfinite(frame[target].astype(float))].reset_index(drop=True)
    if frame.empty:
        raise QRBenchError(f"table {table_path} has no ok rows with a finite {target}")
    why = "a surrogate learns one recipe: fit on a table of one model, task, backend and device kind"
    model_name = table_value(frame, "model_name", table_path, why)
    task_name = table_value(frame, "task_name", table_path, why)
    backend = table_value(frame, "backend", table_path, why)
    device = table_value(
        frame.assign(device=np.where(frame["device"] == "cpu", "cpu", "cuda")), "device", table_path, why
    )
    settings_json = json.loads(str(frame["trial_settings"].iloc[0]))

    spec_arch = resolve_arch(model_name, arch)
    n_blocks = set(frame["n_blocks"].astype(int))
    if n_blocks != {spec_arch.n_blocks}:
        raise QRBenchError(
            f"table rows have {sorted(n_blocks)} blocks but architecture {spec_arch.name} has "
            f"{spec_arch.n_blocks}; pass --arch with the base model's config"
        )
    if fidelity == "multi":
        frame, low_fidelity = _multi_fidelity_rows(frame, target, low_fidelity)
    elif fidelity == "full":
        frame = frame[np.isclose(frame["fidelity_frac"], 1.0)].reset_index(drop=True)
        low_fidelity = None
        if frame.empty:
            raise QRBenchError(f"table {table_path} has no full-fidelity ok rows with a finite {target}")
    else:
        low_fidelity = None

    bits = np.array(frame["bits"].tolist(), dtype=np.int64)
    ranks = np.array(frame["ranks"].tolist(), dtype=np.int64)
    space = table_space(spec_arch, backend, bits, ranks)
    bi, ri = rung_indices(bits, space.bits), rung_indices(ranks, space.ranks)
    mem_settings = memory_settings(settings_json, device)
    _, offset, memory_check = memory_model(frame, spec_arch, mem_settings, space, bi, ri, table_path)
    iq, ir, importance_source = _importance(frame, spec_arch.n_blocks, importance)

    encoder_spec = EncoderSpec(
        arch=spec_arch.as_dict(),
        memory_settings=asdict(mem_settings),
        bits=space.bits,
        ranks=space.ranks,
        memory_offset=offset,
        importance_q=tuple(float(x) for x in iq),
        importance_r=tuple(float(x) for x in ir),
        include_fidelity=(fidelity == "all"),
        low_fidelity=low_fidelity,
    )
    encoder = encoder_spec.build()
    fracs = frame["fidelity_frac"].to_numpy(dtype=float)
    X = encoder.transform(bi, ri, fracs)
    feature_names = encoder.feature_names
    if fidelity == "multi":
        X = np.concatenate([X, frame["low_obs"].to_numpy(dtype=float)[:, None]], axis=1)
        feature_names = feature_names + [f"low_fidelity_{target}"]
    data = SurrogateData(
        X=X,
        y=frame[target].to_numpy(dtype=float),
        groups=frame["config_hash"].to_numpy(dtype=str),
        memory=encoder.memory_bytes(bi, ri).astype(float),
        fidelity_frac=fracs,
        seed=frame["seed"].to_numpy(dtype=np.int64),
        evaluate=np.isclose(fracs, 1.0),
        higher_is_better=TARGETS[target],
    )
    if data.evaluate.sum() == 0:
        raise QRBenchError(f"table {table_path} has no full-fidelity rows to score the surrogate on")
    info = {
        "path": str(table_path),
        "model_name": model_name,
        "task_name": task_name,
        "backend": backend,
        "device": device,
    }
    return TrainingSet(encoder_spec, feature_names, data, content_hash, info, memory_check, importance_source)


def fit_surrogate(
    table_path: PathLike,
    target: str = "accuracy",
    model: str = "xgb",
    out: Optional[PathLike] = None,
    seed: int = 0,
    fidelity: str = "all",
    importance: Optional[PathLike] = None,
    arch: Optional[str] = None,
    low_fidelity: Optional[float] = None,
    params: Optional[dict] = None,
) -> SurrogateArtifact:
    """Fit and score a surrogate of ``target`` on the ok rows of the table at ``table_path``.

    Parameters
    ----------
    target
        ``accuracy`` (higher is better), ``eval_loss`` or ``lm_loss`` (nats; lower is better).
    model
        ``xgb`` (bagged XGBoost ensemble) or ``gp`` (Matérn-5/2 Gaussian process).
    out
        Directory to save the artifact in (nothing is written when None).
    seed
        Seeds the model and every split; the same table and seed give the same manifest metrics.
    fidelity
        ``all``, ``full`` or ``multi`` (see the module docstring).
    importance
        A priors JSON with ``importance_q`` and ``importance_r`` (default: cached priors or zeros).
    arch
        The base model's architecture (preset or config JSON) when the table's ``model_name`` is neither.
    low_fidelity
        For ``fidelity="multi"``: the fraction of the run whose observation is a feature.
    params
        Hyper-parameters passed to the estimator (e.g. ``{"n_members": 8}``).
    """
    from qra_bench.provenance import code_version
    from qra_bench.table import SCHEMA_VERSION

    _check_choices(target, model, fidelity)
    ts = training_set(table_path, target, fidelity, importance, arch, low_fidelity)
    data, encoder_spec, feature_names = ts.data, ts.encoder_spec, ts.feature_names
    X, y, groups, fracs = data.X, data.y, data.groups, data.fidelity_frac
    low_fidelity = encoder_spec.low_fidelity

    def make():
        return make_estimator(model, seed, params)

    random_split = group_kfold(groups, seed=seed)
    random_result = run_split(make, data, random_split)
    results = {
        "random_5fold": random_result,
        "high_memory": run_split(make, data, high_memory_split(groups, data.memory)),
        "top_decile": run_split(make, data, top_decile_split(groups, y, fracs, TARGETS[target])),
    }
    curve = learning_curve(make, data, random_split, seed=seed, full=random_result)
    # Seed noise on the observations the metrics are computed on (in multi mode: the full-fidelity ones).
    noise = noise_floor(y, groups, fracs)
    # Each split's tau beside the tau the seed noise allows at all, so that a low one can be read.
    metrics = {
        name: {**r.metrics, "kendall_tau_noise_ceiling": tau_noise_ceiling(y[r.rows], noise["full"]["std"])}
        for name, r in results.items()
    }
    estimator = make().fit(X, y, groups=groups)

    rows = random_result.rows
    predictions = pd.DataFrame(
        {
            "config_hash": groups[rows],
            "seed": data.seed[rows],
            "fidelity_frac": fracs[rows],
            "observed": y[rows],
            "mean": random_result.mean,
            "std": random_result.std,
        }
    )
    noise_std = noise["full"]["std"]
    rmse = metrics["random_5fold"]["rmse"]
    manifest = {
        "format": ARTIFACT_FORMAT,
        "format_version": ARTIFACT_VERSION,
        "table": {**ts.table, "content_hash": ts.content_hash, "schema_version": SCHEMA_VERSION},
        "code_version": code_version(),
        "library_versions": _library_versions(),
        "target": {"name": target, "higher_is_better": TARGETS[target]},
        "fidelity": {"mode": fidelity, "low_fidelity": low_fidelity},
        "features": feature_names,
        "training": {
            "n_rows": int(len(y)),
            "n_configs": int(len(np.unique(groups))),
            "n_seeds": int(len(np.unique(data.seed))),
            "n_full_fidelity_rows": int(data.evaluate.sum()),
        },
        "model": {
            "kind": model,
            "class": type(estimator).__name__,
            "params": estimator.get_params(),
            "seed": seed,
            "fitted": _fitted_summary(estimator),
        },
        "metrics": metrics,
        "noise_floor": noise,
        "rmse_vs_noise": {
            "rmse": rmse,
            "noise_std": noise_std,
            "ratio": rmse / noise_std if noise_std and np.isfinite(noise_std) and noise_std > 0 else None,
        },
        "learning_curve": curve,
        "memory": {"arch": encoder_spec.arch["name"], "check": ts.memory_check},
        "importance": {"source": ts.importance_source},
        "encoder": encoder_spec.to_dict(),
        "splits": {
            "grouping": "configuration (config_hash): all seeds and fidelities of a configuration are on one side",
            "random_5fold": f"configurations shuffled with seed {seed} into 5 folds; out-of-fold predictions pooled",
            "high_memory": "test = configurations in the top 20 % of predicted memory",
            "top_decile": "test = best 10 % of configurations by mean target at their highest fidelity",
            "scored_rows": "held-out rows at full fidelity (fidelity_frac == 1)",
            "learning_curve": "random_5fold with each train part cut to 10/25/50/100 % of its configurations",
        },
    }
    artifact = SurrogateArtifact(encoder_spec, estimator, manifest, predictions)
    if out is not None:
        artifact.save(out)
    return artifact


def _fitted_summary(estimator) -> dict:
    """The fitted quantities worth reading in the manifest (std calibration; GP kernel and its row subset)."""
    if hasattr(estimator, "std_scale_"):
        return {"std_scale": estimator.std_scale_, "noise_std": estimator.noise_std_}
    if hasattr(estimator, "kernel_"):
        return {"kernel": str(estimator.kernel_), "n_train_rows_used": int(len(estimator.train_rows_))}
    return {}
