"""Where a trial's time goes: wall time and share of each phase, plain path and fast path side by side.

Each path runs in a fresh process (so start-up, imports and loading the model and task are measured too):
``plain`` with ``QRA_BENCH_FAST=0`` (no dequantization cache, no proxy reuse, ``no_grad`` evaluation),
``fast`` with the default execution. Phases: start-up and load, copy of the base, quantize, dequantization
cache, static proxies, LoRA attach and bookkeeping, training, and each checkpoint's evaluation. Each phase
has its wall time and its CPU time (core-seconds of the process, all threads): on a shared machine the two
paths meet different loads, so shares and speed-ups are taken from CPU time. The metrics of both paths are
compared (they must agree to 1e-6). ``tiny`` runs the trial recipe (``TrialSettings()``);
``smollm2-135m`` runs the low-fidelity recipe of the shipped ``smollm2-news`` table. Run from the root:

    .venv/bin/python benchmarks/trial_profile.py [--model tiny|smollm2-135m] [--threads 1] [--quick]
"""

from __future__ import annotations

import time

T_PROCESS = time.perf_counter()

import argparse
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMOLLM2_TABLE = ROOT / "datasets_cache" / "tables" / "smollm2-news"
METRICS = ("eval_loss", "accuracy", "lm_loss", "train_loss", "proxy_eval_loss", "proxy_accuracy", "proxy_lm_loss")


def recipe(model: str, quick: bool):
    """The trial settings profiled for ``model`` (``quick``: 4 steps, one checkpoint)."""
    from qra_bench.lora import LoraSettings
    from qra_bench.quant import QuantSettings
    from qra_bench.trial import TrialSettings

    settings = TrialSettings()
    if model == "smollm2-135m":
        from qra_bench.table import ResultsTable

        text = ResultsTable(SMOLLM2_TABLE).read()["trial_settings"].iloc[0]
        data = json.loads(text)
        data["fidelities"] = tuple(data["fidelities"])
        data["quant"], data["lora"] = QuantSettings(**data["quant"]), LoraSettings(**data["lora"])
        settings = TrialSettings(**data)
    if quick:
        settings = replace(settings, max_steps=4, warmup_steps=1, fidelities=(1.0,))
    return settings


def measure(args: argparse.Namespace, startup: float | None = None) -> dict:
    """Run one trial in this process; return its phases (start-up first) and metrics."""
    import torch

    from qra_bench.models import load_base
    from qra_bench.space import SearchSpace
    from qra_bench.tasks import load_task
    from qra_bench.trial import run_trial

    torch.set_num_threads(args.threads)
    base = load_base(args.model)
    task = load_task(args.task, base.tokenizer)
    if args.eval_limit:
        n, m = args.eval_limit, max(1, args.eval_limit // 8)
        task = replace(
            task, eval_prompts=task.eval_prompts[:n], eval_labels=task.eval_labels[:n], lm_ids=task.lm_ids[:m]
        )
    settings = replace(
        recipe(args.model, args.quick),
        threads=args.threads,
        quant=replace(recipe(args.model, args.quick).quant, backend=args.backend),
    )
    n_blocks = base.model.config.num_hidden_layers
    config = SearchSpace(n_blocks, bits=(2, 3, 4, 8, 16), ranks=(4, 8, 16)).config(
        (args.bits,) * n_blocks, (args.rank,) * n_blocks
    )
    startup = (time.perf_counter() - T_PROCESS, time.process_time()) if startup is None else startup
    result = run_trial(base, task, config, 0, settings)
    phases = [("start-up and load", startup[0])] + list(result.phases)
    cpu = [("start-up and load", startup[1])] + list(result.cpu_phases)
    return {"phases": phases, "cpu": cpu, "rows": [[getattr(r, k) for k in METRICS] for r in result.rows]}


def _in_process(args: argparse.Namespace) -> tuple[dict, dict]:
    """Both paths in this process (quick mode): start-up is measured once and shown for both."""
    os.environ["QRA_BENCH_FAST"] = "0"
    plain = measure(args)
    os.environ["QRA_BENCH_FAST"] = "1"
    fast = measure(args, startup=(plain["phases"][0][1], plain["cpu"][0][1]))
    return plain, fast


def _run_child(args: argparse.Namespace, fast: bool) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--model",
        args.model,
        "--task",
        args.task,
        "--threads",
        str(args.threads),
        "--backend",
        args.backend,
        "--bits",
        str(args.bits),
        "--rank",
        str(args.rank),
    ]
    if args.quick:
        cmd += ["--quick"]
    if args.eval_limit:
        cmd += ["--eval-limit", str(args.eval_limit)]
    env = dict(os.environ, QRA_BENCH_FAST="1" if fast else "0")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("PROFILE ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"the {'fast' if fast else 'plain'} trial failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[len("PROFILE ") :])


def _grouped(phases: list) -> list[tuple[str, float]]:
    """Consecutive training segments summed into one ``training`` phase, the rest as recorded."""
    out: list[tuple[str, float]] = []
    train = 0.0
    for name, seconds in phases:
        if name.startswith("train@"):
            train += seconds
        else:
            out.append((name, seconds))
    return out + [("training", train)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", choices=("tiny", "smollm2-135m"))
    parser.add_argument("--task", default="news")
    parser.add_argument("--backend", default="torchao")
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-limit", type=int, default=0, help="evaluate on the first N held-out windows only")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny, 4 steps, 48 held-out windows, both paths in this process (a smoke run)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.eval_limit = "tiny", args.eval_limit or 48
    if args.child:
        print("PROFILE " + json.dumps(measure(args)), flush=True)
        return 0
    plain, fast = _in_process(args) if args.quick else (_run_child(args, fast=False), _run_child(args, fast=True))
    settings = recipe(args.model, args.quick)
    where = "both paths in one process, start-up shown for both" if args.quick else "each path in a fresh process"
    print(
        f"{args.model}, task {args.task}, {args.backend} {args.bits}-bit, LoRA rank {args.rank}, {settings.max_steps} steps, "
        f"checkpoints {settings.checkpoints()}, {args.threads} thread(s); {where}"
    )
    a, b = dict(_grouped(plain["phases"])), dict(_grouped(fast["phases"]))
    ca, cb = dict(_grouped(plain["cpu"])), dict(_grouped(fast["cpu"]))
    names = list(dict.fromkeys(list(a) + list(b)))
    print(f"{'phase':<20}{'plain wall s':>13}{'CPU s':>8}{'share':>8}{'fast wall s':>13}{'CPU s':>8}{'share':>8}")
    for name in names:
        print(
            f"{name:<20}{a.get(name, 0.0):>13.2f}{ca.get(name, 0.0):>8.2f}{ca.get(name, 0.0) / sum(ca.values()):>8.1%}"
            f"{b.get(name, 0.0):>13.2f}{cb.get(name, 0.0):>8.2f}{cb.get(name, 0.0) / sum(cb.values()):>8.1%}"
        )
    print(
        f"{'total':<20}{sum(a.values()):>13.2f}{sum(ca.values()):>8.2f}{1:>8.0%}{sum(b.values()):>13.2f}"
        f"{sum(cb.values()):>8.2f}{1:>8.0%}"
    )
    in_trial = lambda d: sum(v for k, v in d.items() if k != "start-up and load")
    for label, d in (("plain", ca), ("fast", cb)):
        print(
            f"{label}: non-training {1 - d['training'] / sum(d.values()):.1%} of the process's CPU time, "
            f"{1 - d['training'] / in_trial(d):.1%} of the trial's after start-up"
        )
    print(
        f"speed-up fast over plain (CPU time): {sum(ca.values()) / sum(cb.values()):.2f}x per process, "
        f"{in_trial(ca) / in_trial(cb):.2f}x per trial after start-up, {ca['training'] / cb['training']:.2f}x in training; "
        f"wall time: {in_trial(a) / in_trial(b):.2f}x per trial (load-dependent)"
    )
    diff = max(abs(x - y) for ra, rb in zip(plain["rows"], fast["rows"]) for x, y in zip(ra, rb))
    print(f"largest metric difference plain vs fast over every checkpoint: {diff:.1e} (must be <= 1e-6)")
    return 0 if diff <= 1e-6 else 1


if __name__ == "__main__":
    raise SystemExit(main())
