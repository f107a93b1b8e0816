"""Export a configuration so it can be used outside qra-bench: a peft LoRA config and a quantization config.

Three files describe one configuration (bits and LoRA ranks per block):

- ``config.json``: the configuration itself, ``{"bits": [...], "ranks": [...], "hash": ...}`` (the canonical
  :meth:`QRConfig.to_json` plus its hash);
- ``lora_config.json``: ``peft.LoraConfig(...).to_dict()`` (sets as sorted lists), built with peft, so
  ``LoraConfig(**json.load(f))`` rebuilds it. Every block's seven linears are targeted; ``r`` and
  ``lora_alpha`` are the most common rank and its alpha, and ``rank_pattern`` / ``alpha_pattern`` give every
  module its own rank and alpha under its full, anchored module name (as :func:`qra_bench.lora.lora_config`
  names them, so a pattern of block 1 can never match block 11). Blocks of rank 0 get no adapter
  (``exclude_modules``);
- ``quant_config.json``: bits per block and per module (16 = left unquantized), the backend, group size and
  mapping, and the full :class:`~qra_bench.quant.QuantSettings`; apply it with :func:`apply_quant_config` or
  by hand with ``quantize_blocks(model, cfg["bits"], QuantSettings(**cfg["quant_settings"]))``.

torch and peft are imported only inside the functions that need them.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

from qra_bench.errors import QRBenchError
from qra_bench.space import QRConfig

if TYPE_CHECKING:  # torch-importing modules, loaded lazily
    from torch import nn

    from qra_bench.lora import LoraSettings
    from qra_bench.quant import QuantReport, QuantSettings

__all__ = [
    "CONFIG_FILE",
    "LORA_CONFIG_FILE",
    "QUANT_CONFIG_FILE",
    "QUANT_FORMAT",
    "apply_quant_config",
    "config_dict",
    "default_rank",
    "lora_config_dict",
    "module_name",
    "peft_lora_config",
    "quant_config_dict",
    "quant_settings_from",
    "write_exports",
]

CONFIG_FILE = "config.json"
LORA_CONFIG_FILE = "lora_config.json"
QUANT_CONFIG_FILE = "quant_config.json"
QUANT_FORMAT = "qra-bench-quant-config"
QUANT_FORMAT_VERSION = 1
UNQUANTIZED_BITS = 16
PathLike = Union[str, os.PathLike]


def _block_linears() -> tuple[str, ...]:
    from qra_bench.quant.base import BLOCK_LINEARS

    return BLOCK_LINEARS


def module_name(block: int, linear: str) -> str:
    """Full module name of ``linear`` (e.g. ``"q_proj"``) in decoder block ``block`` of a causal LM."""
    from qra_bench.lora import block_prefix

    # The first four linears live in self_attn, the rest in mlp (LLaMA/Qwen2 layout, as in lora.py).
    parent = "self_attn" if linear in _block_linears()[:4] else "mlp"
    return f"{block_prefix(block)}{parent}.{linear}"


def config_dict(config: QRConfig) -> dict:
    """``config.json``: the canonical configuration JSON plus its SHA-256 hash."""
    return {**json.loads(config.to_json()), "hash": config.hash}


def default_rank(ranks: tuple[int, ...]) -> int:
    """The most common non-zero rank (the larger one on ties); 1 when no block has an adapter."""
    counts = Counter(r for r in ranks if r > 0)
    if not counts:
        return 1
    return max(counts, key=lambda r: (counts[r], r))


def peft_lora_config(config: QRConfig, settings: Optional["LoraSettings"] = None):
    """A ``peft.LoraConfig`` giving every block of ``config`` its own rank (and alpha), 0 = no adapter.

    ``target_modules`` is the seven linear names; ``rank_pattern``/``alpha_pattern`` come from
    :func:`qra_bench.lora.lora_config` (full anchored module names, alpha = ``alpha_per_rank * r``).
    """
    from peft import LoraConfig

    from qra_bench.lora import LoraSettings, lora_config

    settings = settings or LoraSettings()
    linears = list(_block_linears())
    active = [r for r in config.ranks if r > 0]
    # Reuse the trials' own naming so exported and trained adapters cannot disagree.
    patterns = lora_config(config.ranks, settings) if active else None
    r = default_rank(config.ranks)
    excluded = [module_name(l, n) for l, rank in enumerate(config.ranks) if rank == 0 for n in linears]
    return LoraConfig(
        r=r,
        lora_alpha=settings.alpha_per_rank * r,  # type: ignore[arg-type]  # peft annotates int; a float alpha works
        lora_dropout=settings.dropout,
        target_modules=linears if active else [],
        exclude_modules=excluded or None,
        rank_pattern=dict(patterns.rank_pattern) if patterns else {},
        alpha_pattern=dict(patterns.alpha_pattern) if patterns else {},
        use_rslora=settings.use_rslora,
        bias="none",
        task_type="CAUSAL_LM",
    )


def _jsonable(value: Any) -> Any:
    """peft's ``to_dict`` keeps sets (target_modules) and enums; JSON needs sorted lists and strings."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v) for v in value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(getattr(value, "value", value))


def lora_config_dict(config: QRConfig, settings: Optional["LoraSettings"] = None) -> dict:
    """``lora_config.json``: :func:`peft_lora_config`'s ``to_dict()``, JSON-ready (``LoraConfig(**d)`` loads it)."""
    return _jsonable(peft_lora_config(config, settings).to_dict())


def quant_config_dict(config: QRConfig, settings: "QuantSettings") -> dict:
    """``quant_config.json``: bits per block and per module (16 = unquantized) and the quantization settings."""
    linears = _block_linears()
    return {
        "format": QUANT_FORMAT,
        "format_version": QUANT_FORMAT_VERSION,
        "backend": settings.backend,
        "group_size": settings.group_size,
        "mapping": settings.mapping,
        "unquantized_bits": UNQUANTIZED_BITS,
        "bits": list(config.bits),
        "modules": {module_name(l, n): b for l, b in enumerate(config.bits) for n in linears},
        "quant_settings": asdict(settings),
        "config_hash": config.hash,
        "apply": "from qra_bench.quant import QuantSettings, quantize_blocks; "
        "quantize_blocks(model, cfg['bits'], QuantSettings(**cfg['quant_settings']))",
    }


def quant_settings_from(data: Mapping[str, Any]) -> "QuantSettings":
    """The :class:`QuantSettings` of a ``quant_config.json`` dict (unknown keys refused by name)."""
    from qra_bench.quant import QuantSettings

    raw = dict(data.get("quant_settings") or {})
    known = {f.name for f in fields(QuantSettings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise QRBenchError(
            f"quant_config.json has unknown quant_settings {unknown}; allowed: {', '.join(sorted(known))}"
        )
    return QuantSettings(**raw)


def apply_quant_config(model: "nn.Module", data: Union[Mapping[str, Any], PathLike]) -> "QuantReport":
    """Quantize ``model``'s decoder blocks in place as a ``quant_config.json`` (dict or path) says."""
    from qra_bench.quant import quantize_blocks

    if not isinstance(data, Mapping):
        data = json.loads(Path(data).read_text())
    if data.get("format") != QUANT_FORMAT:
        raise QRBenchError(f"not a {QUANT_FORMAT} file (format {data.get('format')!r})")
    return quantize_blocks(model, [int(b) for b in data["bits"]], quant_settings_from(data))


def write_exports(
    out: PathLike, config: QRConfig, lora: Optional["LoraSettings"] = None, quant: Optional["QuantSettings"] = None
) -> list[Path]:
    """Write ``config.json``, ``lora_config.json`` and ``quant_config.json`` into ``out``; return the paths."""
    from qra_bench.quant import QuantSettings

    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    docs = {
        CONFIG_FILE: config_dict(config),
        LORA_CONFIG_FILE: lora_config_dict(config, lora),
        QUANT_CONFIG_FILE: quant_config_dict(config, quant or QuantSettings()),
    }
    paths = []
    for name, doc in docs.items():
        path = directory / name
        path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        paths.append(path)
    return paths
