"""Collector throughput, trials per core-hour: the plain path against the fast path, side by side in one run.

Two ``qra-bench collect`` runs of the same design (default: the stratified design of 20 configurations,
seed 0, the trial recipe) start at the same moment, each with one worker of one thread: ``plain`` with
``QRA_BENCH_FAST=0`` (no dequantization cache, no proxy reuse, ``no_grad`` evaluation) and ``fast`` with
the default execution. Running them together puts both under the same load on a shared machine. A core-hour
is counted as the CPU time of each collection (driver and worker processes, from ``wait4``): everything the
collector does (start-up, design, dispatch, trials, part writes), and far less disturbed by other processes
than wall time (which is printed too). It prints trials per core-hour of each, their ratio (goal >= 1.4)
and the largest difference of any metric between the two tables (the same configurations and seeds: it
must be <= 1e-6). Run from the root:

    .venv/bin/python benchmarks/collector_throughput.py [--n 20] [--backend torchao] [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METRICS = (
    "eval_loss",
    "accuracy",
    "lm_loss",
    "train_loss",
    "proxy_eval_loss",
    "proxy_accuracy",
    "proxy_lm_loss",
    "proxy_recon_error",
)
GOAL = 1.4


def _start(out: Path, fast: bool, args: argparse.Namespace) -> subprocess.Popen:
    cmd = [
        str(Path(sys.executable).parent / "qra-bench"),
        "collect",
        "--out",
        str(out),
        "--n",
        str(args.n),
        "--design",
        args.design,
        "--backend",
        args.backend,
        "--workers",
        "1",
        "--threads",
        "1",
        "--no-progress",
    ]
    if args.steps:
        cmd += ["--steps", str(args.steps), "--fidelities", "1.0"]
    if not args.anchors:
        cmd += ["--no-anchors"]
    env = dict(os.environ, QRA_BENCH_FAST="1" if fast else "0")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="configurations in the design (anchors included)")
    parser.add_argument("--design", default="stratified")
    parser.add_argument("--backend", default="torchao", choices=("torchao", "hqq", "bnb"))
    parser.add_argument(
        "--no-anchors",
        dest="anchors",
        action="store_false",
        help="leave out the 15 uniform anchor configurations (then --n may be below 15)",
    )
    parser.add_argument("--steps", type=int, default=None, help="training steps, one checkpoint (default: the recipe)")
    parser.add_argument("--out", default=None, help="folder for the two tables (default: a temporary one)")
    parser.add_argument(
        "--quick", action="store_true", help="1 random configuration, no anchors, 2 steps (a smoke run)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.steps, args.design, args.anchors = 1, args.steps or 2, "random", False
    root = Path(args.out or tempfile.mkdtemp(prefix="qra-throughput-"))
    outs = {"plain": root / "plain", "fast": root / "fast"}
    t0 = time.perf_counter()
    procs = {name: _start(out, name == "fast", args) for name, out in outs.items()}
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    status: dict[str, int] = {}
    while len(wall) < len(procs):
        for name, proc in procs.items():
            if name in wall:
                continue
            pid, code, usage = os.wait4(proc.pid, os.WNOHANG)  # the child's CPU time and its reaped workers'
            if pid:
                wall[name] = time.perf_counter() - t0
                cpu[name] = usage.ru_utime + usage.ru_stime
                status[name] = os.waitstatus_to_exitcode(code)
        time.sleep(0.2)
    for name, proc in procs.items():
        if status[name] != 0:
            raise SystemExit(f"the {name} collection failed:\n{proc.stderr.read()[-3000:]}")

    from qra_bench.table import ResultsTable

    frames = {name: ResultsTable(out).read() for name, out in outs.items()}
    done = {name: int(f["run_id"].nunique()) for name, f in frames.items()}
    rate = {name: done[name] / (cpu[name] / 3600.0) for name in outs}
    wall_rate = {name: done[name] / (wall[name] / 3600.0) for name in outs}  # one worker x one thread
    keys = ["config_hash", "seed", "fidelity"]
    joined = frames["plain"].merge(frames["fast"], on=keys, suffixes=("_plain", "_fast"))
    diff = max(float((joined[f"{m}_plain"] - joined[f"{m}_fast"]).abs().max()) for m in METRICS)
    steps = args.steps or "the recipe's"
    print(
        f"{args.design} design of {args.n} configurations{'' if args.anchors else ' (no anchors)'}, {args.backend}, {steps} steps; each path: 1 worker x 1 thread, "
        f"both running at the same time -> {root}"
    )
    print(f"{'path':<8}{'trials':>8}{'CPU (s)':>10}{'wall (s)':>10}{'trials per core-hour':>22}{'per wall-hour':>15}")
    for name in outs:
        print(
            f"{name:<8}{done[name]:>8}{cpu[name]:>10.1f}{wall[name]:>10.1f}{rate[name]:>22.1f}{wall_rate[name]:>15.1f}"
        )
    ratio = rate["fast"] / rate["plain"]
    print(
        f"throughput ratio fast / plain: {ratio:.2f}x per core-hour (goal >= {GOAL}x: {'met' if ratio >= GOAL else 'NOT met'}), "
        f"{wall_rate['fast'] / wall_rate['plain']:.2f}x per wall-hour"
    )
    print(f"rows compared: {len(joined)}; largest metric difference: {diff:.1e} (must be <= 1e-6)")
    return 0 if diff <= 1e-6 and len(joined) == len(frames["plain"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
