"""Any causal LM from a local transformers directory (LLaMA, Qwen2/2.5, SmolLM2 families).

The directory needs ``config.json`` (its architecture is what the memory model reads, through
:meth:`~qra_bench.arch.ArchSpec.from_hf_config`), weights (``*.safetensors`` -- sharded ones too -- or
``*.bin``) and a tokenizer. Nothing is fetched from a hub. Weights are loaded in bfloat16 when a CUDA device
is present (a trial copies them to the GPU in bf16) and in float32 otherwise. ``sha256`` is the sha256 of the
weight file, or for several files of the sorted list of ``name sha256`` lines.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from qra_bench.corpora import sha256_file
from qra_bench.errors import QRBenchError


def check_model_dir(path: Path) -> dict:
    """The directory's ``config.json`` as a dict, after checking config, architecture and weights (one-line errors)."""
    from qra_bench.arch import SUPPORTED_MODEL_TYPES

    if not path.is_dir():
        raise QRBenchError(f"model directory {path} does not exist")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise QRBenchError(
            f"model directory {path} has no config.json; it must be a transformers model directory "
            "(config.json, weights, tokenizer)"
        )
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as exc:
        raise QRBenchError(f"cannot read {config_file}: {exc}") from None
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise QRBenchError(
            f"{config_file}: model_type {model_type!r} is not supported; allowed: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    if not weight_files(path):
        raise QRBenchError(f"no *.safetensors or *.bin weights in {path}")
    return config


def weight_files(path: Path) -> list[Path]:
    """The checkpoint's weight files, sorted (safetensors preferred over PyTorch bins)."""
    return sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))


def weights_sha256(path: Path) -> str:
    """sha256 of the single weight file, or of ``name sha256`` lines over all of them."""
    files = weight_files(path)
    if len(files) == 1:
        return sha256_file(files[0])
    return hashlib.sha256("".join(f"{f.name} {sha256_file(f)}\n" for f in files).encode()).hexdigest()


def load_local(path: Path, name: str | None = None):
    """Load the causal LM and tokenizer of a local directory as a :class:`~qra_bench.models.BaseModel`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qra_bench.models import BaseModel

    path = Path(path)
    check_model_dir(path)
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as exc:
        raise QRBenchError(
            f"cannot load a tokenizer from {path}: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
        ) from None
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model.eval()
    return BaseModel(
        name=name or str(path),
        sha256=weights_sha256(path),
        model=model,
        tokenizer=tokenizer,
        note="" if dtype == torch.float32 else "weights loaded in bfloat16",
    )
