"""Issue 3's accuracy criterion on ``cipher``, read on the task's own skill: the permuted tokens.

The criterion asks uniform 2-bit rank 4 and uniform 16-bit rank 16 to differ by >= 10 points of task accuracy.
On ``cipher`` the skill fine-tuning must add is writing the 16 permuted tokens; the other ~80 % of targets are
plain news the base already predicts, so all-token accuracy dilutes the task's signal. This reruns the two
anchors at seeds 0-2 with the table's recipe (``TrialSettings(threads=1)``, as the collector runs) and prints,
per trial, eval loss and all-token accuracy (which must equal the shipped table's rows: same seed, same
numbers) and ``focus_accuracy`` (accuracy on the permuted targets, recorded in ``extra_metrics`` by trials
from this stop on), before and after fine-tuning.

    python experiments/probes/cipher_accuracy_gap.py [--table datasets_cache/tables/tiny-cipher]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from qra_bench.models import load_base
from qra_bench.space import QRConfig
from qra_bench.table import ResultsTable
from qra_bench.tasks import load_task
from qra_bench.trial import TrialSettings, run_trial

ANCHORS = ((2, 4), (16, 16))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", default="datasets_cache/tables/tiny-cipher")
    p.add_argument("--seeds", default="0,1,2")
    a = p.parse_args()
    base = load_base("tiny")
    task = load_task("cipher", base.tokenizer)
    df = ResultsTable(a.table).read()
    df = df[(df["status"] == "ok") & (df["fidelity"] == df["max_steps"])]
    shipped = {(h, int(s)): (float(l), float(acc)) for h, s, l, acc in zip(df["config_hash"], df["seed"], df["eval_loss"], df["accuracy"])}
    print(f"task cipher sha256 {task.sha256[:16]}..., {len(task.focus_token_ids)} focus tokens; table hash "
          f"{ResultsTable(a.table).content_hash()[:16]}...")
    print("| bits | rank | seed | eval loss | table eval loss | accuracy (all targets) | focus accuracy | focus accuracy before fine-tuning | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    out: dict = {}
    for bits, rank in ANCHORS:
        cfg = QRConfig((bits,) * 8, (rank,) * 8)
        for seed in (int(x) for x in a.seeds.split(",")):
            t0 = time.perf_counter()
            row = run_trial(base, task, cfg, seed, TrialSettings(threads=1)).final
            extra = json.loads(row.extra_metrics)
            ref = shipped.get((cfg.hash, seed), (float("nan"), float("nan")))
            out.setdefault((bits, rank), []).append((row.accuracy, extra["focus_accuracy"]))
            print(f"| {bits} | {rank} | {seed} | {row.eval_loss:.4f} | {ref[0]:.4f} | {row.accuracy:.4f} | "
                  f"{extra['focus_accuracy']:.4f} | {extra['proxy_focus_accuracy']:.4f} | {time.perf_counter() - t0:.0f} |", flush=True)
    lo, hi = (np.array(out[k]) for k in ANCHORS)
    for i, name in enumerate(("all-token accuracy", "focus accuracy")):
        gap = hi[:, i].mean() - lo[:, i].mean()
        se = np.sqrt(hi[:, i].var(ddof=1) / len(hi) + lo[:, i].var(ddof=1) / len(lo))
        print(f"{name}: 16-bit r16 {hi[:, i].mean():.4f} vs 2-bit r4 {lo[:, i].mean():.4f}: gap {100 * gap:.1f} "
              f"points (SE {100 * se:.1f}); criterion >= 10 points: {'holds' if gap >= 0.10 else 'fails'}")


if __name__ == "__main__":
    main()
