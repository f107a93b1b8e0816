"""Base models, all loaded offline: ``tiny`` (ours), ``smollm2-135m`` (GGUF from PyPI), or a local path."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from qra_bench.corpora import sha256_file
from qra_bench.errors import QRBenchError

BASE_MODELS = ("tiny", "smollm2-135m")


@dataclass
class BaseModel:
    """A loaded base causal LM that trials copy before quantizing.

    Attributes
    ----------
    name : identity recorded in every row ("tiny", "smollm2-135m" or the path).
    sha256 : sha256 of the checkpoint file the weights came from.
    note : what "full precision" means for this model (e.g. dequantized Q4_1).
    """

    name: str
    sha256: str
    model: nn.Module
    tokenizer: object
    note: str = ""
    _cache: dict = field(default_factory=dict, repr=False)

    def fresh_copy(self, device: torch.device, dtype: torch.dtype) -> nn.Module:
        """An independent copy of the base weights on ``device`` in ``dtype``, in eval mode."""
        m = copy.deepcopy(self.model).to(device=device, dtype=dtype)
        m.eval()
        return m


def _from_dir(name: str, path: Path, weights_file: str) -> BaseModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(path)
    return BaseModel(name=name, sha256=sha256_file(path / weights_file), model=model, tokenizer=tokenizer)


def load_base(name: str) -> BaseModel:
    """Load a base model by name (``tiny``, ``smollm2-135m``) or by local directory path.

    Loading imports transformers' quantizers, which import torchao: its known-harmless notices and the
    per-tensor loading bar are silenced here (:func:`qra_bench.quant.quiet.quiet_stack`).
    """
    from transformers.utils import logging as hf_logging

    from qra_bench.quant.quiet import quiet_stack

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with quiet_stack():
            return _load_base(name)
    finally:
        if bar:
            hf_logging.enable_progress_bar()


def _load_base(name: str) -> BaseModel:
    if name == "tiny":
        from qra_bench.models.tiny import TINY_DIR

        if not (TINY_DIR / "model.safetensors").exists():
            raise QRBenchError(
                f"the tiny checkpoint is missing under {TINY_DIR}; run `qra-bench prepare` to rebuild it"
            )
        base = _from_dir("tiny", TINY_DIR, "model.safetensors")
        manifest = json.loads((TINY_DIR / "manifest.json").read_text())
        if manifest["model_sha256"] != base.sha256:
            raise QRBenchError(
                f"{TINY_DIR}/model.safetensors does not match its manifest sha256; run `qra-bench prepare`"
            )
        return base
    if name == "smollm2-135m":
        from qra_bench.models.smollm2 import load_smollm2

        return load_smollm2()
    path = Path(name)
    if path.is_dir():  # any causal LM from a local directory (qra_bench.models.local)
        from qra_bench.models.local import load_local

        return load_local(path, str(path))
    raise QRBenchError(
        f"unknown model {name!r}; use one of {list(BASE_MODELS)} or a local transformers model directory"
    )
