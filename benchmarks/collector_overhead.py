"""Collector overhead: the collector's wall time over the sum of its trials' own time, in one run.

Runs a small collection (default: 6 random configurations, one seed, 1 worker with 1 thread, the trial
recipe's own max_steps and fidelities) into a fresh table and prints, side by side, the collector's wall time (design, reading the table, starting
the worker process with its imports and model/task loading, dispatch, every part write) and the sum of the
trials' ``time_total_s`` (quantize, proxies, train, evaluate), with the train + eval share. The overhead is
``wall / sum - 1`` with one worker; the target is at most 5 %. The fixed start-up part (until the first trial
starts) is shown separately: it is paid once per worker, whatever the number of trials (mostly importing
transformers and loading the model and task), so the ratio for larger collections is projected from the two
parts.

Usage: ``python benchmarks/collector_overhead.py [--n 6] [--steps STEPS] [--model tiny] [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import datetime
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--steps", type=int, default=None, help="max_steps of a trial (default: the recipe's)")
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--out", default=None)
    ap.add_argument("--quick", action="store_true", help="one configuration of 2 steps (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.n, args.steps = 1, args.steps or 2

    from qra_bench.collect import CollectSpec, collect
    from qra_bench.table import ResultsTable
    from qra_bench.trial import TrialSettings

    out = Path(args.out or tempfile.mkdtemp(prefix="qra-overhead-")) / "table"
    spec = CollectSpec(
        out=str(out),
        model=args.model,
        design="random",
        n=args.n,
        anchors=False,
        workers=1,
        threads=1,
        settings=TrialSettings(max_steps=args.steps) if args.steps else TrialSettings(),
    )
    started = datetime.now().astimezone()
    report = collect(spec, progress=False)
    print(report.summary())

    rows = ResultsTable(out).read(dedupe=False, include_failed=True)
    final = rows.sort_values("fidelity").groupby("run_id").tail(1)  # each trial's last checkpoint: its totals
    trial_s = float(final["time_total_s"].sum())
    # time_train_s and time_eval_s accumulate over a trial's checkpoints: its last row holds its totals.
    train_s = float(final["time_train_s"].sum())
    eval_s = float(final["time_eval_s"].sum())
    first_start = min(datetime.fromisoformat(t) for t in rows["started_at"])
    startup_s = (first_start - started).total_seconds()
    wall = report.wall_s
    print()
    print(
        f"{'trials':<34}{len(final):>10}     (1 worker, 1 thread, max_steps {spec.settings.max_steps}, "
        f"fidelities {spec.settings.fidelities})"
    )
    print(f"{'collector wall time':<34}{wall:>10.1f} s")
    print(
        f"{'sum of trials time_total_s':<34}{trial_s:>10.1f} s   (train {train_s:.1f} s + eval {eval_s:.1f} s "
        f"= {train_s + eval_s:.1f} s; quantize, proxies, copies {trial_s - train_s - eval_s:.1f} s)"
    )
    print(
        f"{'wall / sum of trials':<34}{wall / trial_s:>10.3f}     overhead {100 * (wall / trial_s - 1):+.1f} % "
        f"(target <= 5 %)"
    )
    print(f"{'wall / sum of train + eval':<34}{wall / (train_s + eval_s):>10.3f}")
    print(
        f"{'  start-up until the first trial':<34}{startup_s:>10.1f} s   (spawn, imports, model and task loading; once per worker)"
    )
    per_trial_gap = (wall - startup_s - trial_s) / len(final)
    print(
        f"{'  everything else':<34}{wall - startup_s - trial_s:>10.1f} s   ({per_trial_gap:.2f} s per trial: "
        "dispatch, part writes, result handling)"
    )
    mean_trial = trial_s / len(final)
    for n in (50, 200):
        projected = (startup_s + n * (mean_trial + per_trial_gap)) / (n * mean_trial)
        print(f"{f'  projected for {n} such trials':<34}{projected:>10.3f}     overhead {100 * (projected - 1):+.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
