"""Quantized-LoRA training step time over fp32-LoRA step time, per backend, with and without the dequantization cache.

Every model trains the tiny base on the same batches of the default task with the trial recipe's own step
(:func:`qra_bench.trial.train_step`: batch size, LoRA dropout, gradient clipping, AdamW) and LoRA rank 8
on all blocks. The models are stepped in turn, round after round, so that load from other processes on a
shared machine hits every one alike; the first rounds are warm-up and the median of the rest is reported.
Step time is CPU time (core-seconds of this process: what a trial costs, and far less disturbed by other
processes than wall time on a shared machine); the wall-clock ratios are printed too.
``plain`` is the uncached path (each forward and backward dequantizes the frozen weights again), ``cached``
the frozen-weight dequantization cache (:mod:`qra_bench.quant.dequant_cache`). Run from the repository root:

    .venv/bin/python benchmarks/trial_speed.py [--steps 12] [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from qra_bench.lora import attach_lora
from qra_bench.defaults import DEFAULT_TASK
from qra_bench.models import load_base
from qra_bench.quant import QuantSettings, quantize_blocks
from qra_bench.quant.dequant_cache import install_dequant_cache
from qra_bench.quant.quiet import quiet_stack
from qra_bench.tasks import load_task
from qra_bench.trial import TrialSettings, train_step

CASES = (
    ("fp32 (no quantization)", None, 16),
    ("torchao intx 4-bit", "torchao", 4),
    ("torchao intx 2-bit", "torchao", 2),
    ("hqq 4-bit", "hqq", 4),
    ("hqq 2-bit", "hqq", 2),
    ("bitsandbytes nf4", "bnb", 4),
    ("bitsandbytes int8", "bnb", 8),
)
QUICK_CASES = ("fp32 (no quantization)", "torchao intx 4-bit", "hqq 4-bit", "bitsandbytes nf4", "bitsandbytes int8")
GOAL = 1.05


@dataclass
class _Runner:
    """One model being stepped: its optimizer and the step times (s)."""

    name: str
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    trainable: list
    times: list = field(default_factory=list)
    walls: list = field(default_factory=list)


def _runner(base, backend, bits: int, cached: bool, name: str, n_blocks: int) -> _Runner:
    torch.manual_seed(0)
    model = base.fresh_copy(torch.device("cpu"), torch.float32)
    if backend is not None:
        quantize_blocks(model, [bits] * n_blocks, QuantSettings(backend=backend))
        if cached and install_dequant_cache(model, backend) == 0:
            raise RuntimeError(f"{name}: no layer was cached")
    with quiet_stack():
        model = attach_lora(model, [8] * n_blocks)
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.train()
    return _Runner(name, model, torch.optim.AdamW(trainable, lr=1e-3), trainable)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="rounds of one step per model (the first 2 are warm-up)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="3 rounds, one configuration per backend (a smoke run)")
    args = parser.parse_args(argv)
    steps = 3 if args.quick else args.steps
    warmup = 1 if args.quick else 2
    if steps <= warmup:
        parser.error(f"--steps must exceed the {warmup} warm-up rounds")
    torch.set_num_threads(args.threads)
    base = load_base("tiny")
    task = load_task(DEFAULT_TASK, base.tokenizer)
    recipe = TrialSettings()
    n_blocks = base.model.config.num_hidden_layers
    cases = [c for c in CASES if not args.quick or c[0] in QUICK_CASES]
    runners = []
    for name, backend, bits in cases:
        runners.append(_runner(base, backend, bits, False, name, n_blocks))
        if backend is not None:
            runners.append(_runner(base, backend, bits, True, name, n_blocks))
    order = np.random.default_rng(0).permutation(len(task.train_prompts))
    for step in range(steps):
        ids, answers = task.train_batch(order[step * recipe.batch_size : (step + 1) * recipe.batch_size])
        # rotate who goes first, so no model always runs right after another's memory traffic
        for r in runners[step % len(runners) :] + runners[: step % len(runners)]:
            t0, c0 = time.perf_counter(), time.process_time()
            train_step(r.model, r.opt, r.trainable, task, ids, answers, recipe.grad_clip)
            r.times.append(time.process_time() - c0)
            r.walls.append(time.perf_counter() - t0)
    median = [statistics.median(r.times[warmup:]) for r in runners]
    wall = [statistics.median(r.walls[warmup:]) for r in runners]
    reference = median[0]
    print(
        f"tiny (sha256 {base.sha256[:8]}), task {task.name}, LoRA rank 8, batch {recipe.batch_size}, {args.threads} thread(s), "
        f"median CPU time of {steps - warmup} interleaved steps"
    )
    print(
        f"{'backend':<26}{'plain (ms)':>11}{'vs fp32':>9}{'cached (ms)':>12}{'vs fp32':>9}{'speed-up':>10}"
        f"{'wall: plain':>13}{'cached':>8}"
    )
    print(f"{runners[0].name:<26}{reference * 1e3:>11.1f}{1.0:>8.2f}x")
    worst = 0.0
    for i in range(1, len(runners), 2):
        plain, cached = median[i], median[i + 1]
        worst = max(worst, cached / reference)
        print(
            f"{runners[i].name:<26}{plain * 1e3:>11.1f}{plain / reference:>8.2f}x{cached * 1e3:>12.1f}"
            f"{cached / reference:>8.2f}x{plain / cached:>9.2f}x{wall[i] / wall[0]:>12.2f}x{wall[i + 1] / wall[0]:>7.2f}x"
        )
    print(f"worst cached ratio {worst:.2f}x (goal <= {GOAL:.2f}x): {'met' if worst <= GOAL else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
