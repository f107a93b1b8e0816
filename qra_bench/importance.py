"""Layer importance priors I_q (fidelity) and I_r (plasticity) of the method's Stage 0 (``docs/algorithm.md``).

- I_q(l): how much held-out quality degrades when block l alone is pushed to the lowest bit width while
  every other block sits at a reference width (4 bits), measured before any fine-tuning: the increase of
  the held-out LM loss plus the task loss (nats).
- I_r(l): how much a short low-fidelity fine-tune gains when block l alone gets the highest rank and the
  others the lowest: the decrease of the task eval loss against the all-lowest-rank run (nats).
Both are min-max normalized to [0, 1] and cached per (model, task, settings) under
``datasets_cache/importance/``, since measuring them costs 2L quantizations and L short fine-tunes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np

from qra_bench.corpora import CACHE_DIR
from qra_bench.models import BaseModel
from qra_bench.quant import quantize_blocks
from qra_bench.space import SearchSpace
from qra_bench.tasks.base import TaskData
from qra_bench.trial import TrialSettings, compute_device, evaluate, run_trial

IMPORTANCE_DIR = CACHE_DIR / "importance"


@dataclass(frozen=True)
class ImportancePriors:
    """Per-block priors in [0, 1] and the raw measurements (nats) they were normalized from."""

    importance_q: tuple[float, ...]
    importance_r: tuple[float, ...]
    raw_q: tuple[float, ...]
    raw_r: tuple[float, ...]
    model_sha256: str
    task_sha256: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "ImportancePriors":
        d = json.loads(text)
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**values)


def minmax(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]; a constant vector maps to all 0.5 (no block stands out)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    if hi - lo <= 1e-12:
        return np.full(len(values), 0.5)
    return (values - lo) / (hi - lo)


def fidelity_raw(
    base: BaseModel, task: TaskData, space: SearchSpace, settings: TrialSettings, ref_bits: int = 4
) -> np.ndarray:
    """Loss increase (nats) per block when that block alone drops to the lowest bit width."""
    device, dtype = compute_device()
    low = min(space.bits)
    ref_bits = ref_bits if ref_bits in space.bits else max(space.bits)

    def damage(bits: list[int]) -> float:
        model = base.fresh_copy(device, dtype)
        quantize_blocks(model, bits, settings.quant)
        ev = evaluate(model, task, settings.eval_batch_size, device)
        return ev.lm_loss + ev.eval_loss

    reference = damage([ref_bits] * space.n_blocks)
    return np.asarray(
        [
            damage([low if i == l else ref_bits for i in range(space.n_blocks)]) - reference
            for l in range(space.n_blocks)
        ]
    )


def plasticity_raw(
    base: BaseModel, task: TaskData, space: SearchSpace, settings: TrialSettings, steps: int
) -> np.ndarray:
    """Task-loss gain (nats) per block of a short fine-tune with that block alone at the highest rank."""
    short = replace(settings, max_steps=steps, fidelities=(1.0,))
    lo_r, hi_r = min(r for r in space.ranks if r > 0), max(space.ranks)
    bits = [max(b for b in space.bits if b <= 8)] * space.n_blocks  # quantized, as in the searched models

    def final_loss(ranks: list[int]) -> float:
        loss = run_trial(base, task, space.config(bits, ranks), seed=0, settings=short).final.eval_loss
        assert loss is not None, "run_trial returns ok rows, which always carry an eval loss"
        return loss

    reference = final_loss([lo_r] * space.n_blocks)
    return np.asarray(
        [
            reference - final_loss([hi_r if i == l else lo_r for i in range(space.n_blocks)])
            for l in range(space.n_blocks)
        ]
    )


def importance_priors(
    base: BaseModel,
    task: TaskData,
    space: SearchSpace,
    settings: TrialSettings,
    plasticity_steps: Optional[int] = None,
    cache_dir: Path = IMPORTANCE_DIR,
) -> ImportancePriors:
    """Measure (or load from cache) the priors of ``base`` on ``task``."""
    steps = plasticity_steps or max(1, settings.max_steps // 4)
    key = hashlib.sha256(
        json.dumps([base.sha256, task.sha256, space.bits, space.ranks, settings.to_json(), steps]).encode()
    ).hexdigest()[:16]
    path = cache_dir / f"{base.name.replace('/', '_')}-{task.name}-{key}.json"
    if path.exists():
        return ImportancePriors.from_json(path.read_text())
    raw_q = fidelity_raw(base, task, space, settings)
    raw_r = plasticity_raw(base, task, space, settings, steps)
    priors = ImportancePriors(
        importance_q=tuple(float(x) for x in minmax(raw_q)),
        importance_r=tuple(float(x) for x in minmax(raw_r)),
        raw_q=tuple(float(x) for x in raw_q),
        raw_r=tuple(float(x) for x in raw_r),
        model_sha256=base.sha256,
        task_sha256=task.sha256,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(priors.to_json())
    tmp.replace(path)
    return priors
