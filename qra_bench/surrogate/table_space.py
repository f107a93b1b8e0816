"""The space and memory model a results table's rows live in, rebuilt without torch from what its trials recorded.

Trials record what they ran (base model, backend, group size, device, batch size); :func:`resolve_arch`,
:func:`memory_settings`, :func:`table_space` and :func:`memory_model` turn those records back into the
objects a surrogate's encoder needs, and refuse a table whose recorded memory the rebuilt model cannot
reproduce.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import pandas as pd

from qra_bench.arch import ArchSpec, list_presets, load_arch
from qra_bench.errors import QRBenchError
from qra_bench.memory import MemoryModel, MemorySettings, storage_layout, supported_bits
from qra_bench.space import DEFAULT_BITS, DEFAULT_RANKS, SearchSpace

__all__ = ["memory_model", "memory_settings", "resolve_arch", "rung_indices", "table_space"]

PathLike = Union[str, os.PathLike]


def resolve_arch(model_name: str, arch: Optional[str]) -> ArchSpec:
    """The base model's shapes: ``arch`` (preset or config JSON), else a preset or directory named like the model."""
    if arch is not None:
        return load_arch(arch)
    presets = list_presets()
    for name in (model_name, Path(model_name).name):
        if name in presets:
            return load_arch(name)
    config = Path(model_name) / "config.json"
    if config.is_file():
        return ArchSpec.from_json(config, name=model_name)
    raise QRBenchError(
        f"cannot find the architecture of base model {model_name!r} (not a preset, no {config}); "
        f"pass --arch with a preset ({', '.join(presets)}) or the model's config.json"
    )


def memory_settings(trial_settings: dict, device: str) -> MemorySettings:
    """The memory settings trials record (qra_bench.trial.memory_settings), rebuilt without torch.

    Trials run in float32 on a CPU and bf16 on CUDA, so every dtype is 4 or 2 bytes. The sequence length is
    not recorded; it only changes the activation term, which is the same for every configuration and is
    absorbed by the encoder's memory offset (see :func:`memory_model`).
    """
    width = 4 if device == "cpu" else 2
    quant = trial_settings.get("quant", {})
    return MemorySettings(
        backend=storage_layout(quant),
        group_size=int(quant.get("group_size", 128)),
        weight_dtype_bytes=width,
        meta_dtype_bytes=width,
        lora_dtype_bytes=width,
        grad_dtype_bytes=width,
        optimizer_state_bytes=width,
        batch_size=int(trial_settings.get("batch_size", 1)),
        activation_dtype_bytes=width,
    )


def table_space(arch: ArchSpec, backend: str, bits: np.ndarray, ranks: np.ndarray) -> SearchSpace:
    """The collector's default ladders (bits the backend can store) plus every value the table uses."""
    allowed = supported_bits(backend)
    seen_bits = set(np.unique(bits).tolist())
    bad = sorted(seen_bits - set(allowed))
    if bad:
        raise QRBenchError(f"table rows use bits {bad}, which backend {backend!r} cannot store")
    ladder_bits = sorted({b for b in DEFAULT_BITS if b in allowed} | seen_bits)
    ladder_ranks = sorted(set(DEFAULT_RANKS) | set(np.unique(ranks).tolist()))
    return SearchSpace(arch.n_blocks, bits=tuple(ladder_bits), ranks=tuple(ladder_ranks))


def rung_indices(values: np.ndarray, ladder: tuple[int, ...]) -> np.ndarray:
    lut = np.full(max(ladder) + 1, -1, dtype=np.int64)
    lut[list(ladder)] = np.arange(len(ladder))
    return lut[values]


def memory_model(
    frame: pd.DataFrame,
    arch: ArchSpec,
    settings: MemorySettings,
    space: SearchSpace,
    bi: np.ndarray,
    ri: np.ndarray,
    table: PathLike,
) -> tuple[MemoryModel, int, dict]:
    """The memory model, the offset (bytes) that makes it reproduce the table's ``mem_predicted_bytes``, and a
    record of the check. Refuses a model whose per-configuration differences are not one constant."""
    model = MemoryModel(arch, settings, space)
    computed = model.total_bytes_batch(bi, ri)
    recorded = frame["mem_predicted_bytes"]
    known = recorded.notna().to_numpy()
    if not known.any():
        return model, 0, {"rows_checked": 0, "offset_bytes": 0}
    diff = recorded.to_numpy()[known].astype(np.int64) - computed[known]
    if int(np.ptp(diff)) != 0:
        raise QRBenchError(
            f"the memory model rebuilt for table {table} ({arch.name}, backend {settings.backend}, group "
            f"{settings.group_size}) does not reproduce its mem_predicted_bytes (the difference varies by "
            f"{int(np.ptp(diff)):,} bytes across configurations); pass --arch with the base model's config.json"
        )
    return model, int(diff[0]), {"rows_checked": int(known.sum()), "offset_bytes": int(diff[0])}
