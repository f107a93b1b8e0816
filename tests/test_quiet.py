"""A real trial prints none of the quantization stack's known-harmless notices, while real warnings still show."""

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from qra_bench.quant.quiet import quiet_stack

ROOT = Path(__file__).resolve().parent.parent
KNOWN = (
    "_C_mxfp8",
    "is an Enum subclass",
    "kernels-community",
    "get_apply_tensor_subclass",
    "is_gradient_checkpointing",
    "Loading weights",
)

SCRIPT = """
import torch
from dataclasses import replace
from qra_bench.models import load_base
from qra_bench.space import SearchSpace
from qra_bench.tasks import load_task
from qra_bench.trial import TrialSettings, run_trial
torch.set_num_threads(1)
base = load_base("tiny")
task = load_task("news", base.tokenizer)
task = replace(task, eval_prompts=task.eval_prompts[:8], eval_labels=task.eval_labels[:8], lm_ids=task.lm_ids[:2])
space = SearchSpace(8, bits=(4, 16), ranks=(8,))
for backend in ("torchao", "hqq", "bnb"):
    settings = replace(TrialSettings(), max_steps=1, fidelities=(1.0,), threads=1,
                       quant=replace(TrialSettings().quant, backend=backend))
    run_trial(base, task, space.config((4,) * 7 + (16,), (8,) * 8), 0, settings)
print("done")
"""


def test_a_trial_on_every_backend_prints_no_known_harmless_notice():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "done" in proc.stdout
    shown = [line for line in proc.stderr.splitlines() if any(k in line for k in KNOWN)]
    assert not shown, shown


def test_other_warnings_still_show_inside_the_quiet_block():
    with pytest.warns(UserWarning, match="a real problem"), quiet_stack():
        warnings.warn("a real problem")
    with pytest.warns(FutureWarning, match="something else is deprecated"), quiet_stack():
        warnings.warn("something else is deprecated", FutureWarning)
