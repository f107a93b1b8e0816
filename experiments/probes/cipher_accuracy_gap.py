"""The landscape's accuracy criterion on ``cipher``, read on the task's own skill: the permuted tokens.

The criterion asks uniform 2-bit rank 4 and uniform 16-bit rank 16 to differ by >= 10 points of task accuracy.
On ``cipher`` the skill fine-tuning must add is writing the 16 permuted tokens; the other ~80 % of targets are
plain news the base already predicts, so all-token accuracy dilutes the task's signal. This reruns the two
anchors at seeds 0-2 with the table's recipe (``TrialSettings(threads=1)``, as the collector runs) and prints,
per trial, eval loss and all-token accuracy (which must equal the shipped table's rows: same seed, same
numbers) and ``focus_accuracy`` (accuracy on the permuted targets, recorded in ``extra_metrics`` by trials
that carry it), before and after fine-tuning.

    python experiments/probes/cipher_accuracy_gap.py [--table datasets_cache/tables/tiny-cipher]

``--quant '{"group_size": 256}'`` (QuantSettings fields), ``--settings '{"lr": 0.002}'`` (TrialSettings fields), ``--task news`` and ``--swapped 32`` (a cipher with
more permuted tokens) rerun the anchors (``--anchors "2,4;16,16"``) under another quantizer setting or task; the
"table eval loss" column is then left empty (the table holds the recipe's rows).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np

from qra_bench.models import load_base
from qra_bench.space import QRConfig
from qra_bench.table import ResultsTable
from qra_bench.tasks import load_task
from qra_bench.tasks.cipher import build_cipher
from qra_bench.trial import TrialSettings, run_trial


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", default="datasets_cache/tables/tiny-cipher")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--task", default="cipher")
    p.add_argument("--quant", default="{}", help="QuantSettings overrides as JSON (default: the recipe's)")
    p.add_argument(
        "--settings",
        default="{}",
        help="TrialSettings overrides as JSON, e.g. '{\"lr\": 0.002}' (default: the recipe's)",
    )
    p.add_argument("--swapped", type=int, default=None, help="cipher: permute this many tokens (default: the task's)")
    p.add_argument("--anchors", default="2,4;16,16", help="bits,rank pairs; the gap is read between the first two")
    a = p.parse_args()
    base = load_base("tiny")
    task = load_task(a.task, base.tokenizer) if a.swapped is None else build_cipher(base.tokenizer, a.swapped)
    anchors = [tuple(int(x) for x in pair.split(",")) for pair in a.anchors.split(";")]
    overrides = json.loads(a.quant)
    recipe = json.loads(a.settings)
    settings = replace(TrialSettings(threads=1), **recipe)
    settings = replace(settings, quant=replace(settings.quant, **overrides))
    shipped = {}
    if not overrides and not recipe and a.task == "cipher" and a.swapped is None:
        df = ResultsTable(a.table).read()
        df = df[(df["status"] == "ok") & (df["fidelity"] == df["max_steps"])]
        shipped = {
            (h, int(s)): (float(l), float(acc))
            for h, s, l, acc in zip(df["config_hash"], df["seed"], df["eval_loss"], df["accuracy"])
        }
        print(f"table hash {ResultsTable(a.table).content_hash()[:16]}...")
    focus = len(task.focus_token_ids) > 0
    print(
        f"task {a.task} sha256 {task.sha256[:16]}..., {len(task.focus_token_ids)} focus tokens; "
        f"quantizer {settings.quant}; lr {settings.lr}, {settings.max_steps} steps"
    )
    print(
        "| bits | rank | seed | eval loss | table eval loss | accuracy (all targets) | accuracy before fine-tuning | focus accuracy | focus accuracy before fine-tuning | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    out: dict = {}
    for bits, rank in anchors:
        cfg = QRConfig((bits,) * 8, (rank,) * 8)
        for seed in (int(x) for x in a.seeds.split(",")):
            t0 = time.perf_counter()
            row = run_trial(base, task, cfg, seed, settings).final
            extra = (
                json.loads(row.extra_metrics)
                if focus
                else {"focus_accuracy": float("nan"), "proxy_focus_accuracy": float("nan")}
            )
            ref = shipped.get((cfg.hash, seed), (float("nan"), float("nan")))
            out.setdefault((bits, rank), []).append((row.accuracy, extra["focus_accuracy"]))
            print(
                f"| {bits} | {rank} | {seed} | {row.eval_loss:.4f} | {ref[0]:.4f} | {row.accuracy:.4f} | {row.proxy_accuracy:.4f} | "
                f"{extra['focus_accuracy']:.4f} | {extra['proxy_focus_accuracy']:.4f} | {time.perf_counter() - t0:.0f} |",
                flush=True,
            )
    lo, hi = (np.array(out[k]) for k in anchors[:2])
    for i, name in enumerate(("all-token accuracy", "focus accuracy")):
        gap = hi[:, i].mean() - lo[:, i].mean()
        se = np.sqrt(hi[:, i].var(ddof=1) / len(hi) + lo[:, i].var(ddof=1) / len(lo)) if len(hi) > 1 else float("nan")
        print(
            f"{name}: {anchors[1]} {hi[:, i].mean():.4f} vs {anchors[0]} {lo[:, i].mean():.4f}: gap {100 * gap:.1f} "
            f"points (SE {100 * se:.1f}); criterion >= 10 points: {'holds' if gap >= 0.10 else 'fails'}"
        )


if __name__ == "__main__":
    main()
