"""The surrogate backend: a benchmark's fitted surrogates (one per metric, bound to the table's content hash)
found, checked and asked for their predictive mean and std."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from qra_bench.data import PathLike, surrogates_dir
from qra_bench.errors import QRBenchError
from qra_bench.harness.results import METRICS, Answer, CostModel
from qra_bench.space import QRConfig, SearchSpace

if TYPE_CHECKING:
    from qra_bench.surrogate import SurrogateArtifact

__all__ = ["load_surrogates", "surrogate_answer"]


def _surrogate_dirs(name: str, surrogate: PathLike, root: Optional[PathLike]) -> tuple[Path, Path]:
    """``(artifact directory, folder of its siblings)`` for a model kind (``xgb``) or an artifact path."""
    path = Path(surrogate)
    if (path / "manifest.json").is_file():
        return path, path.parent
    folder = surrogates_dir(root) / name
    return folder / str(surrogate), folder


def load_surrogates(
    name: str, table_path: Path, surrogate: PathLike, metric: str, space: SearchSpace, root: Optional[PathLike]
) -> dict[str, "SurrogateArtifact"]:
    """metric -> artifact: the named one (must predict ``metric``) and same-kind siblings of other metrics."""
    from qra_bench.surrogate import SurrogateArtifact

    primary, folder = _surrogate_dirs(name, surrogate, root)
    if not (primary / "manifest.json").is_file():
        raise QRBenchError(
            f"no surrogate for benchmark {name!r} at {primary}: fit one with `qra-bench fit --table {table_path} "
            f"--out {primary}`, or use --backend table"
        )
    main = SurrogateArtifact.load(primary, table_path=table_path)
    if main.target != metric:
        raise QRBenchError(
            f"surrogate {primary} predicts {main.target}, the benchmark's metric is {metric}; "
            f"fit one with --target {metric} or choose metric={main.target!r}"
        )
    if main.multi_fidelity:
        raise QRBenchError(
            f"surrogate {primary} is multi-fidelity (it needs an observed low-fidelity result); "
            "a benchmark needs one fitted with --fidelity all or full"
        )
    if (main.space.bits, main.space.ranks) != (space.bits, space.ranks):
        raise QRBenchError(
            f"surrogate {primary} has ladders bits {list(main.space.bits)} ranks "
            f"{list(main.space.ranks)}; the table's are {list(space.bits)} {list(space.ranks)}"
        )
    found = {metric: main}
    kind = main.manifest["model"]["kind"]
    for path in sorted(folder.glob("*/manifest.json")) if folder.is_dir() else []:
        try:
            manifest = json.loads(path.read_text())
            target = manifest["target"]["name"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if target in METRICS and target not in found and manifest.get("model", {}).get("kind") == kind:
            try:
                other = SurrogateArtifact.load(path.parent, table_path=table_path)
            except QRBenchError as exc:  # a stale sibling must not block the metric the user asked for
                warnings.warn(f"skipping surrogate {path.parent}: {exc}", stacklevel=3)
                continue
            if not other.multi_fidelity:
                found[target] = other
    return found


def surrogate_answer(
    surrogates: dict[str, "SurrogateArtifact"], config: QRConfig, fidelity: float, *, name: str, cost_model: CostModel
) -> Answer:
    """Every metric's predictive mean and std of ``config`` at ``fidelity`` (NaN and None for a metric without a
    surrogate), at the ``cost_model``'s predicted cost. Deterministic: no noise is sampled."""
    values: dict[str, tuple[float, Optional[float]]] = {}
    for metric in METRICS:
        art = surrogates.get(metric)
        if art is None:
            values[metric] = (math.nan, None)
            continue
        if not art.encoder_spec.include_fidelity and fidelity != 1.0:
            raise QRBenchError(
                f"the {metric} surrogate of {name!r} was fitted on full-fidelity rows only; "
                f"it cannot answer fidelity {fidelity:g}"
            )
        mean, std = art.predict_configs([config], fidelity_frac=fidelity)
        values[metric] = (float(mean[0]), float(std[0]))
    return Answer(
        backend="surrogate",
        accuracy=values["accuracy"][0],
        eval_loss=values["eval_loss"][0],
        cost_s=cost_model.seconds(fidelity),
        cost_kind="predicted",
        seeds=(),
        exact_seed=False,
        accuracy_std=values["accuracy"][1],
        eval_loss_std=values["eval_loss"][1],
    )
