"""Is the embedded default's landscape worth searching? (issue 3's acceptance, measured)

Two parts:
1. ``--damage``: quantization damage before any fine-tuning (seconds per config): held-out LM loss of
   uniform configs at every bit width, and of each block alone at every bit width (others 16-bit).
2. ``--table``: the fine-tuned landscape from a results table: trial time, seed noise, the spread of random
   configs that fit the ``uniform-4bit`` budget, bit-vs-rank regressions, and the anchor differences.

Writes ``experiments/results/landscape.md`` (and ``landscape.json``) with every figure and its source.

    python experiments/landscape.py --damage --table datasets_cache/tables/tiny-news
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def zero_step_damage(model_name: str = "tiny", task_name: str = "news", backend: str = "torchao") -> dict:
    """Held-out LM and task loss (nats) before fine-tuning, for uniform and single-block bit widths."""
    from dataclasses import replace

    from qra_bench.models import load_base
    from qra_bench.quant import QuantSettings, quantize_blocks
    from qra_bench.tasks import load_task
    from qra_bench.trial import TrialSettings, compute_device, evaluate

    base = load_base(model_name)
    task = load_task(task_name, base.tokenizer)
    settings = replace(TrialSettings(), quant=replace(QuantSettings(), backend=backend))
    device, dtype = compute_device()
    n = base.model.config.num_hidden_layers
    ladder = [16, 8, 4, 3, 2]

    def ev(bits):
        model = base.fresh_copy(device, dtype)
        quantize_blocks(model, bits, settings.quant)
        e = evaluate(model, task, settings.eval_batch_size, device)
        return {"lm_loss": e.lm_loss, "eval_loss": e.eval_loss, "accuracy": e.accuracy}

    t0 = time.time()
    uniform = {b: ev([b] * n) for b in ladder}
    per_block = {l: {b: ev([b if i == l else 16 for i in range(n)])["lm_loss"] for b in ladder} for l in range(n)}
    monotone = {l: all(per_block[l][a] <= per_block[l][b] + 1e-4 for a, b in zip(ladder, ladder[1:])) for l in range(n)}
    return {
        "model": model_name, "model_sha256": base.sha256, "task": task_name, "backend": backend,
        "uniform": uniform, "per_block_lm_loss": per_block, "per_block_monotone": monotone,
        "uniform_2bit_cost_nats": uniform[2]["lm_loss"] - uniform[16]["lm_loss"],
        "seconds": time.time() - t0,
    }


def _r2(X: np.ndarray, y: np.ndarray) -> float:
    A = np.column_stack([np.ones(len(y)), X])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    return 1 - float(resid @ resid) / float(((y - y.mean()) ** 2).sum())


def table_landscape(table_path: str, budget: str = "uniform-4bit") -> dict:
    """Issue 3's fine-tuned criteria from a table's full-fidelity rows."""
    from qra_bench.arch import load_arch
    from qra_bench.memory import MemoryModel, MemorySettings
    from qra_bench.space import QRConfig, SearchSpace
    from qra_bench.table import ResultsTable

    table = ResultsTable(table_path)
    df = table.read()
    df = df[df["fidelity"] == df["max_steps"]].copy()
    arch = load_arch(df["model_name"].iloc[0])
    space = SearchSpace(arch.n_blocks)
    mm = MemoryModel(arch, MemorySettings(backend="hqq"), space)
    b = mm.budget(budget)
    df["feasible"] = [mm.is_feasible(QRConfig(bi, ri), b) for bi, ri in zip(df["bits"], df["ranks"])]
    df["uniform_bits"] = [len(set(x)) == 1 for x in df["bits"]]
    df["uniform_ranks"] = [len(set(x)) == 1 for x in df["ranks"]]
    df["log2_rank"] = [float(np.mean(np.log2(np.maximum(r, 1)))) for r in df["ranks"]]
    out = {"table": table_path, "table_hash": table.content_hash(), "budget": budget, "budget_bytes": b.bytes,
           "n_full_fidelity_rows": int(len(df)), "median_trial_s": float(df["time_total_s"].median())}
    for metric in ("accuracy", "eval_loss"):
        by_cfg = df.groupby("config_hash")
        seeds = by_cfg[metric].agg(["std", "count", "mean"])
        rep = seeds[seeds["count"] >= 3]
        noise = float(np.sqrt((rep["std"] ** 2).mean())) if len(rep) else float("nan")
        means = by_cfg.agg(mean=(metric, "mean"), avg_bits=("avg_bits", "first"), log2_rank=("log2_rank", "first"),
                           feasible=("feasible", "first"), uniform=("uniform_bits", "first"))
        rnd = means[means["feasible"] & ~means["uniform"]]
        res = {"noise_std": noise, "n_repeated_configs": int(len(rep)), "n_random_feasible": int(len(rnd))}
        if len(rnd) >= 5:
            res["spread_std"] = float(rnd["mean"].std())
            res["spread_over_noise"] = res["spread_std"] / noise if noise else float("nan")
            X = rnd[["avg_bits", "log2_rank"]].to_numpy()
            y = rnd["mean"].to_numpy()
            full = _r2(X, y)
            res["r2_both"] = full
            res["r2_drop_without_bits"] = full - _r2(X[:, [1]], y)
            res["r2_drop_without_rank"] = full - _r2(X[:, [0]], y)

        def anchor(bits, rank):
            sel = df[[set(x) == {bits} and set(r) == {rank} for x, r in zip(df["bits"], df["ranks"])]]
            return float(sel[metric].mean()) if len(sel) else float("nan")

        res["uniform_2bit_r8"] = anchor(2, 8)
        res["uniform_16bit_r8"] = anchor(16, 8)
        res["bits_effect_r8_over_noise"] = abs(res["uniform_16bit_r8"] - res["uniform_2bit_r8"]) / noise if noise else float("nan")
        res["uniform_2bit_r4"] = anchor(2, 4)
        res["uniform_16bit_r16"] = anchor(16, 16)
        out[metric] = res
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--damage", action="store_true")
    parser.add_argument("--table")
    parser.add_argument("--backend", default="torchao")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    report = {}
    if args.damage:
        report["damage"] = zero_step_damage(backend=args.backend)
    if args.table:
        report["landscape"] = table_landscape(args.table)
    text = json.dumps(report, indent=1, default=str)
    (RESULTS / "landscape.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
