"""A fitted surrogate on disk: the model, the settings of its feature encoder, and its quality manifest.

A surrogate directory holds

- ``manifest.json``: what it was fitted on (the table's path and content hash, schema version, rows), with
  which code and libraries, its features and target, the model's hyper-parameters, metrics on named splits,
  the seed-noise floor, the learning curve, and the SHA-256 of the model file;
- ``model.pkl``: the fitted estimator (pickle; load only artifacts you trust, as with any pickle);
- ``predictions.csv``: the random-split held-out predictions the parity plot shows;
- ``parity.png`` and ``learning_curve.png``;
- ``SHA256SUMS``: the SHA-256 of every other file, manifest included (``sha256sum -c SHA256SUMS`` format).

:meth:`SurrogateArtifact.load` enforces the binding between a surrogate and its table: if the table's
content hash differs from the manifest's, loading fails with both hashes named, unless the caller passes
``allow_hash_mismatch=True``. It also refuses, naming the file, any file whose bytes differ from
``SHA256SUMS`` (a truncated model, an edited manifest) and a directory without ``SHA256SUMS``;
:func:`seal` writes that list for a surrogate saved before it existed, from its files as they are.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import pandas as pd

from qra_bench.arch import ArchSpec
from qra_bench.errors import QRBenchError
from qra_bench.memory import MemoryModel, MemorySettings
from qra_bench.space import QRConfig, SearchSpace
from qra_bench.surrogate.features import FeatureEncoder

__all__ = ["ARTIFACT_FORMAT", "EncoderSpec", "SurrogateArtifact", "check_sums", "seal"]

ARTIFACT_FORMAT = "qra-bench-surrogate"
ARTIFACT_VERSION = 1
MODEL_FILE = "model.pkl"
MANIFEST_FILE = "manifest.json"
PREDICTIONS_FILE = "predictions.csv"
SUMS_FILE = "SHA256SUMS"
#: The files of a surrogate directory that ``SHA256SUMS`` covers (those present when it is written).
SEALED_FILES = (MANIFEST_FILE, MODEL_FILE, PREDICTIONS_FILE, "parity.png", "learning_curve.png")
PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class EncoderSpec:
    """Everything needed to rebuild a surrogate's :class:`FeatureEncoder` (stored in the manifest).

    ``memory_offset`` is in bytes; ``low_fidelity`` is the fraction of the run of the observation a
    multi-fidelity surrogate takes as its last feature (None otherwise).
    """

    arch: dict
    memory_settings: dict
    bits: tuple[int, ...]
    ranks: tuple[int, ...]
    memory_offset: int = 0
    importance_q: tuple[float, ...] = ()
    importance_r: tuple[float, ...] = ()
    include_fidelity: bool = True
    low_fidelity: Optional[float] = None

    def build(self) -> FeatureEncoder:
        arch = ArchSpec(**self.arch)
        space = SearchSpace(arch.n_blocks, bits=tuple(self.bits), ranks=tuple(self.ranks))
        model = MemoryModel(arch, MemorySettings(**self.memory_settings), space)
        return FeatureEncoder(
            space,
            model,
            importance_q=self.importance_q or None,
            importance_r=self.importance_r or None,
            memory_offset=self.memory_offset,
            include_fidelity=self.include_fidelity,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("bits", "ranks", "importance_q", "importance_r"):
            d[key] = list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EncoderSpec":
        d = dict(d)
        for key in ("bits", "ranks", "importance_q", "importance_r"):
            d[key] = tuple(d.get(key) or ())
        return cls(**d)


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null (strict JSON); numpy scalars and arrays become python values."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def _num(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.3f}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def seal(directory: PathLike) -> Path:
    """Write ``SHA256SUMS`` for the files of the surrogate in ``directory`` as they are now; return its path.

    :meth:`SurrogateArtifact.save` seals what it writes. Call this yourself only for a surrogate saved
    before the list existed, after checking it (``model.pkl`` against the manifest's own hash is checked here).
    """
    src = Path(directory)
    manifest = json.loads((src / MANIFEST_FILE).read_text())
    expected = manifest.get("model_file", {}).get("sha256")
    if expected != _sha256(src / MODEL_FILE):
        raise QRBenchError(f"{src / MODEL_FILE} does not match the sha256 in its manifest; refusing to seal it")
    lines = [f"{_sha256(src / name)}  {name}\n" for name in SEALED_FILES if (src / name).is_file()]
    out = src / SUMS_FILE
    temporary = src / f".{SUMS_FILE}.tmp"
    temporary.write_text("".join(lines))
    os.replace(temporary, out)
    return out


def check_sums(directory: PathLike) -> dict[str, str]:
    """Check every file listed in ``SHA256SUMS`` of ``directory``; return {name: sha256}.

    Raises :class:`QRBenchError` naming the first file that is missing or whose bytes changed, or the list
    itself when it is missing or malformed.
    """
    src = Path(directory)
    sums_path = src / SUMS_FILE
    if not sums_path.is_file():
        raise QRBenchError(
            f"{sums_path} is missing: the surrogate's files cannot be checked; save it again, or "
            f"seal it (qra_bench.surrogate.artifact.seal) after checking it"
        )
    sums: dict[str, str] = {}
    for lineno, line in enumerate(sums_path.read_text(errors="replace").splitlines(), start=1):
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or name not in SEALED_FILES:
            raise QRBenchError(
                f"{sums_path}:{lineno}: expected '<sha256>  <file>' for a surrogate file, got {line[:80]!r}"
            )
        sums[name] = digest
    if MANIFEST_FILE not in sums or MODEL_FILE not in sums:
        raise QRBenchError(f"{sums_path} does not list {MANIFEST_FILE} and {MODEL_FILE}")
    for name, digest in sums.items():
        path = src / name
        if not path.is_file():
            raise QRBenchError(f"{path} is missing; {SUMS_FILE} lists it")
        actual = _sha256(path)
        if actual != digest:
            raise QRBenchError(
                f"{path} has sha256 {actual}, {SUMS_FILE} says {digest}: the file was changed or "
                "truncated after the surrogate was saved; refit the surrogate"
            )
    return sums


@dataclass
class SurrogateArtifact:
    """A fitted surrogate: encoder, estimator and manifest, plus its held-out predictions (for the plots).

    Use :meth:`predict_configs` or :meth:`predict_indices`; both return ``(mean, std)`` in target units.
    """

    encoder_spec: EncoderSpec
    estimator: Any
    manifest: dict
    predictions: Optional[pd.DataFrame] = None
    encoder: FeatureEncoder = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.encoder = self.encoder_spec.build()

    # -- what it is ----------------------------------------------------------------------------------------
    @property
    def target(self) -> str:
        return self.manifest["target"]["name"]

    @property
    def higher_is_better(self) -> bool:
        return bool(self.manifest["target"]["higher_is_better"])

    @property
    def feature_names(self) -> list[str]:
        return list(self.manifest["features"])

    @property
    def table_hash(self) -> str:
        return self.manifest["table"]["content_hash"]

    @property
    def space(self) -> SearchSpace:
        return self.encoder.space

    @property
    def multi_fidelity(self) -> bool:
        return self.encoder_spec.low_fidelity is not None

    # -- prediction ----------------------------------------------------------------------------------------
    def features(
        self,
        bit_idx: np.ndarray,
        rank_idx: np.ndarray,
        fidelity_frac: float | np.ndarray = 1.0,
        low_fidelity_obs: Optional[np.ndarray] = None,
    ) -> np.ndarray:
        """The estimator's input for rung-index arrays of shape (n, L)."""
        X = self.encoder.transform(bit_idx, rank_idx, fidelity_frac)
        if self.multi_fidelity:
            if low_fidelity_obs is None:
                raise QRBenchError(
                    f"this surrogate is multi-fidelity: pass low_fidelity_obs, the observed {self.target} of each "
                    f"configuration at fidelity {self.encoder_spec.low_fidelity:g} of the run"
                )
            obs = np.broadcast_to(np.asarray(low_fidelity_obs, dtype=np.float64), (len(X),))
            X = np.concatenate([X, obs[:, None]], axis=1)
        return X

    def predict_indices(
        self,
        bit_idx: np.ndarray,
        rank_idx: np.ndarray,
        fidelity_frac: float | np.ndarray = 1.0,
        low_fidelity_obs: Optional[np.ndarray] = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` of the target for configurations given as rung indices of shape (n, L).

        ``fidelity_frac`` matters only for surrogates fitted on all fidelities; a multi-fidelity surrogate
        needs ``low_fidelity_obs`` (one observed target per configuration at its low fidelity).
        """
        return self.estimator.predict(
            self.features(bit_idx, rank_idx, fidelity_frac, low_fidelity_obs), return_std=True
        )

    def predict_configs(
        self,
        configs: Sequence[QRConfig],
        fidelity_frac: float | np.ndarray = 1.0,
        low_fidelity_obs: Optional[np.ndarray] = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` of the target for validated configurations (see :meth:`predict_indices`)."""
        bi, ri = self.encoder.indices(configs)
        return self.predict_indices(bi, ri, fidelity_frac, low_fidelity_obs)

    def summary(self) -> str:
        """Metrics per split beside the seed-noise floor, as a few lines of text."""
        m = self.manifest
        tr = m["training"]
        lines = [
            f"{m['model']['kind']} surrogate of {self.target} ({m['fidelity']['mode']} fidelities): {tr['n_rows']} rows, "
            f"{tr['n_configs']} configurations; table hash {self.table_hash[:16]}",
            f"{'split':<14}{'n':>5}{'R2':>8}{'Spearman':>10}{'tau':>8}{'tau max':>9}{'RMSE':>9}{'top10%':>8}"
            f"{'NLL':>8}{'cov90':>7}",
        ]
        for split, v in m["metrics"].items():
            # "tau max": what the seed noise allows a perfect predictor (absent from manifests before it existed)
            lines.append(
                f"{split:<14}{v['n']:>5}"
                + "".join(
                    f"{_num(v.get(k)):>{w}}"
                    for k, w in (
                        ("r2", 8),
                        ("spearman", 10),
                        ("kendall_tau", 8),
                        ("kendall_tau_noise_ceiling", 9),
                        ("rmse", 9),
                        ("top10_recall", 8),
                        ("nll", 8),
                        ("coverage90", 7),
                    )
                )
            )
        noise = m["noise_floor"]["full"]
        lines.append(
            f"seed-noise std at full fidelity {_num(noise['std'])} ({noise['n_groups']} repeated configurations); "
            f"random-split RMSE / noise = {_num(m['rmse_vs_noise']['ratio'])}"
        )
        return "\n".join(lines)

    # -- disk ----------------------------------------------------------------------------------------------
    def save(self, directory: PathLike) -> Path:
        """Write model, manifest, held-out predictions and both plots into ``directory``; return it."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / SUMS_FILE).unlink(missing_ok=True)  # a half-saved directory must not pass as sealed
        model_path = out / MODEL_FILE
        model_path.write_bytes(pickle.dumps(self.estimator, protocol=pickle.HIGHEST_PROTOCOL))
        self.manifest["model_file"] = {"name": MODEL_FILE, "sha256": _sha256(model_path)}
        manifest = _json_safe(self.manifest)
        (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, allow_nan=False) + "\n")
        if self.predictions is not None:
            self.predictions.to_csv(out / PREDICTIONS_FILE, index=False, float_format="%.9g")
            from qra_bench.surrogate.plots import learning_curve_plot, parity_plot

            parity_plot(self.predictions, self.manifest, out / "parity.png")
            learning_curve_plot(self.manifest, out / "learning_curve.png")
        seal(out)
        return out

    @classmethod
    def load(
        cls, directory: PathLike, table_path: Optional[PathLike] = None, allow_hash_mismatch: bool = False
    ) -> "SurrogateArtifact":
        """Read a surrogate directory and check it is bound to its table.

        The table checked is ``table_path`` or, when None, the path recorded in the manifest if it exists
        there (a surrogate shipped without its table loads unchecked). A table whose content hash differs
        from the manifest's is refused with :class:`QRBenchError` unless ``allow_hash_mismatch``.
        """
        src = Path(directory)
        manifest_path = src / MANIFEST_FILE
        if not manifest_path.is_file():
            raise QRBenchError(f"no surrogate at {src}: {MANIFEST_FILE} is missing")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise QRBenchError(f"{manifest_path} is not valid JSON: {str(exc).splitlines()[0]}") from None
        if (
            not isinstance(manifest, dict)
            or manifest.get("format") != ARTIFACT_FORMAT
            or manifest.get("format_version") != ARTIFACT_VERSION
        ):
            raise QRBenchError(f"{manifest_path}: not a {ARTIFACT_FORMAT} manifest of version {ARTIFACT_VERSION}")
        model_path = src / MODEL_FILE
        if not model_path.is_file():
            raise QRBenchError(f"no surrogate model at {model_path}")
        model_file = manifest.get("model_file")
        expected = model_file.get("sha256") if isinstance(model_file, dict) else None
        actual = _sha256(model_path)
        if expected != actual:
            raise QRBenchError(
                f"{model_path} has sha256 {actual}, its manifest says {expected}: the model file was "
                "replaced or corrupted; refit the surrogate"
            )
        check_sums(src)  # the manifest itself and the other files, byte for byte
        try:
            cls._check_binding(manifest, table_path, allow_hash_mismatch)
            encoder_spec = EncoderSpec.from_dict(manifest["encoder"])
        except (KeyError, TypeError) as exc:
            raise QRBenchError(f"{manifest_path}: lacks or mangles an entry ({_one_line(exc)})") from None
        try:
            estimator = pickle.loads(model_path.read_bytes())
        except Exception as exc:  # any unpickling failure of a file that matched its hash: name the file
            raise QRBenchError(f"{model_path} cannot be unpickled ({_one_line(exc)})") from None
        predictions = pd.read_csv(src / PREDICTIONS_FILE) if (src / PREDICTIONS_FILE).is_file() else None
        return cls(encoder_spec, estimator, manifest, predictions)

    @staticmethod
    def _check_binding(manifest: dict, table_path: Optional[PathLike], allow_hash_mismatch: bool) -> None:
        from qra_bench.table import ResultsTable

        recorded = manifest["table"]["path"]
        path = Path(table_path) if table_path is not None else Path(recorded)
        if table_path is None and not path.exists():
            return
        actual = ResultsTable(path).content_hash()
        expected = manifest["table"]["content_hash"]
        if actual != expected and not allow_hash_mismatch:
            raise QRBenchError(
                f"table {path} has content hash {actual}, but this surrogate was fitted on a table with hash {expected} "
                f"({recorded}): refit it with `qra-bench fit`, or pass allow_hash_mismatch=True to use it anyway"
            )
