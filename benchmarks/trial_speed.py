"""Quantized-LoRA training step time over fp32-LoRA step time, per backend, measured side by side.

Every backend trains the same tiny model on the same batches (the bbc task's prompts, the trial recipe's
batch size) with LoRA rank 8 on all blocks; the first steps are discarded as warm-up and the median of the
rest is reported. Run from the repository root:

    .venv/bin/python benchmarks/trial_speed.py [--steps 12] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from qra_bench.adapters import attach_lora
from qra_bench.models import load_base
from qra_bench.quant import QuantSettings, quantize_blocks
from qra_bench.tasks import load_task
from qra_bench.trial import TrialSettings

CASES = (("fp32 (no quantization)", None, 16), ("torchao intx 4-bit", "torchao", 4), ("torchao intx 2-bit", "torchao", 2),
         ("hqq 4-bit", "hqq", 4), ("hqq 2-bit", "hqq", 2), ("bitsandbytes nf4", "bnb", 4), ("bitsandbytes int8", "bnb", 8))


def step_seconds(base, task, backend, bits, steps: int, batch: int) -> float:
    model = base.fresh_copy(torch.device("cpu"), torch.float32)
    if backend is not None:
        quantize_blocks(model, [bits] * 8, QuantSettings(backend=backend))
    model = attach_lora(model, [8] * 8)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    times = []
    for step in range(steps):
        ids, answers = task.train_batch(torch.arange(step * batch, (step + 1) * batch).numpy() % len(task.train_prompts))
        t0 = time.perf_counter()
        logits = model(input_ids=ids[:, :-1], logits_to_keep=1).logits[:, -1]
        loss = torch.nn.functional.cross_entropy(logits, answers)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = load_base("tiny")
    task = load_task("news", base.tokenizer)
    batch = TrialSettings().batch_size
    reference = None
    print(f"tiny (sha256 {base.sha256[:8]}), LoRA rank 8, batch {batch}, {args.threads} thread(s), median of {args.steps - 2} steps")
    print(f"{'backend':<26}{'step (ms)':>10}{'vs fp32':>9}")
    for name, backend, bits in CASES:
        seconds = step_seconds(base, task, backend, bits, args.steps, batch)
        reference = reference or seconds
        print(f"{name:<26}{seconds * 1e3:>10.1f}{seconds / reference:>8.2f}x", flush=True)


if __name__ == "__main__":
    main()
