"""Write a design of the configurations one table measured within a budget, in a seeded random order.

The landscape criteria are read from "random configurations that fit the budget"; which configurations those are
changes the verdict (``experiments/probes/README.md``). To measure a second task on the *same* sample as the
first (so the tasks can also be averaged per configuration), this takes the non-uniform configurations of a
table that fit the budget, keeps those of a random design (``--stratified N``: the collector's stratified design
of N configurations at seed 0, drawn at random per memory stratum; the table also holds configurations that
optimizers chose, which are not random), drops those already in ``--exclude`` designs, and shuffles them: any
prefix the collector finishes is a uniform random subset of that sample.

    python experiments/transfer_design.py --table datasets_cache/tables/tiny-news --stratified 1200 \
        --exclude experiments/designs/landscape.jsonl --out experiments/designs/news-in-budget.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from qra_bench.arch import load_arch
from qra_bench.collect import file_design
from qra_bench.space import QRConfig, SearchSpace
from qra_bench.table import ResultsTable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from landscape_design import trial_memory_model  # noqa: E402


def stratified_hashes(model: str, task: str, n: int, seed: int = 0) -> set[str]:
    """Config hashes of the collector's stratified design (``qra-bench collect --design stratified --n n``)."""
    from qra_bench.collect import CollectSpec, design_for
    from qra_bench.trial import TrialSettings

    spec = CollectSpec(out="-", model=model, task=task, design="stratified", n=n, seeds=[0], design_seed=seed)
    return {c.hash for c in design_for(spec, TrialSettings())}


def in_budget_configs(
    table: str, budget: str = "uniform-4bit", exclude: "list[str] | None" = None, seed: int = 0, stratified: int = 0
) -> list[QRConfig]:
    """Distinct full-fidelity non-uniform configurations of ``table`` within ``budget`` (of its stratified design
    of ``stratified`` configurations when > 0), shuffled by ``seed``."""
    df = ResultsTable(table).read()
    df = df[(df["status"] == "ok") & (df["fidelity"] == df["max_steps"])]
    keep = (
        stratified_hashes(str(df["model_name"].iloc[0]), str(df["task_name"].iloc[0]), stratified)
        if stratified
        else None
    )
    arch = load_arch(str(df["model_name"].iloc[0]))
    space = SearchSpace(arch.n_blocks)
    mm = trial_memory_model(arch, space, str(df["task_name"].iloc[0]))
    b = mm.budget(budget)
    skip = {c.hash for path in exclude or [] for c in file_design(space, path, anchors=False)}
    out, seen = [], set()
    for bits, ranks in zip(df["bits"], df["ranks"]):
        cfg = QRConfig([int(x) for x in bits], [int(x) for x in ranks])
        if (
            cfg.hash in seen
            or cfg.hash in skip
            or len(set(cfg.bits)) == 1
            or (keep is not None and cfg.hash not in keep)
        ):
            continue
        seen.add(cfg.hash)
        if mm.is_feasible(cfg, b):
            out.append(cfg)
    out.sort(key=lambda c: c.hash)  # the table's row order depends on part-file names; the design must not
    order = np.random.default_rng(seed).permutation(len(out))
    return [out[i] for i in order]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--table", required=True)
    p.add_argument("--budget", default="uniform-4bit")
    p.add_argument("--exclude", action="append", default=[])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stratified", type=int, default=0, help="keep the configurations of the stratified design of N")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    configs = in_budget_configs(a.table, a.budget, a.exclude, a.seed, a.stratified)
    with open(a.out, "w") as fh:
        for cfg in configs:
            fh.write(json.dumps({"bits": list(cfg.bits), "ranks": list(cfg.ranks)}) + "\n")
    print(f"{len(configs)} configurations -> {a.out}")


if __name__ == "__main__":
    main()
