"""Write the designs of the headline scenario's table: the top quarter of the budget's memory range, and the best.

``band``  configurations drawn uniformly over the tiny model's space and kept when they fit the budget and lie in
          the top quarter of the memory range it admits (memory >= smallest configuration + 0.75 x (budget -
          smallest configuration)); uniform configurations are excluded (they are the anchors). Deterministic for
          the seed.
``best``  the ``--k`` best configurations of a table that fit the budget, by mean full-fidelity ``--metric``
          (``--with-uniform``: and the best fitting uniform one), so the collector can run them at more seeds.
          Any scenario's table: the budget is read in the table's own memory model.

    python experiments/headline_design.py band --n 320 --out datasets_cache/scenarios/tiny-cipher-band.jsonl
    python experiments/headline_design.py best --table datasets_cache/tables/tiny-cipher --k 20 \\
        --out experiments/designs/cipher-best.jsonl
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from landscape_design import trial_memory_model
from qra_bench.arch import load_arch
from qra_bench.space import QRConfig, SearchSpace

HEADLINE_BUDGET = "0.81xfp16-lora"


def band_random(n: int, seed: int, budget: str, task: str = "cipher", arch_name: str = "tiny") -> list[QRConfig]:
    """``n`` distinct mixed configurations drawn uniformly within the top quarter of ``budget``'s memory range."""
    arch = load_arch(arch_name)
    space = SearchSpace(arch.n_blocks)
    mm = trial_memory_model(arch, space, task)
    limit = mm.budget(budget).bytes
    smallest = int(mm.total_bytes_batch(np.zeros((1, arch.n_blocks), int), np.zeros((1, arch.n_blocks), int))[0])
    floor = smallest + 0.75 * (limit - smallest)
    rng = np.random.default_rng(seed)
    out: list[QRConfig] = []
    seen: set[str] = set()
    while len(out) < n:
        bi, ri = space.sample_indices(rng, 4096)
        tot = mm.total_bytes_batch(bi, ri)
        ok = (tot <= limit) & (tot >= floor)
        for b, r in zip(bi[ok], ri[ok]):
            cfg = space.from_indices(b, r)
            if len(set(cfg.bits)) > 1 or len(set(cfg.ranks)) > 1:
                if cfg.hash not in seen:
                    seen.add(cfg.hash)
                    out.append(cfg)
                    if len(out) == n:
                        break
    return out


def best_fitting(table: str, k: int, budget: str, metric: str = "eval_loss", uniform: bool = False) -> list[QRConfig]:
    """The ``k`` configurations of ``table`` that fit ``budget`` with the best mean full-fidelity ``metric`` (the
    budget in the table's own memory model, as the scenario's card reads it); with ``uniform``, also the best
    fitting uniform configuration when it is not among them."""
    from qra_bench.difficulty import HIGHER_IS_BETTER, best_fitting_uniform, config_means
    from qra_bench.harness import Benchmark
    from qra_bench.table import ResultsTable

    limit = Benchmark.load(table, backend="table", budget=budget, metric=metric).budget.bytes
    frame = ResultsTable(table).read()
    higher = metric in HIGHER_IS_BETTER
    means = config_means(frame[frame["status"] == "ok"], metric)
    fitting = means[means["memory"] <= limit].sort_values("mean", ascending=not higher)
    configs = [QRConfig(tuple(b), tuple(r)) for b, r in zip(fitting["bits"][:k], fitting["ranks"][:k])]
    flat = best_fitting_uniform(means, limit, higher) if uniform else None
    if flat is not None and all(c.hash != flat.config_hash for c in configs):
        configs.append(QRConfig(flat.bits, flat.ranks))
    return configs


def write(path: str, configs: list[QRConfig]) -> None:
    with open(path, "w") as fh:
        for cfg in configs:
            fh.write(json.dumps({"bits": list(cfg.bits), "ranks": list(cfg.ranks)}) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=("band", "best"))
    p.add_argument("--budget", default=HEADLINE_BUDGET)
    p.add_argument("--n", type=int, default=320)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--table", default="datasets_cache/tables/tiny-cipher")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--metric", default="eval_loss")
    p.add_argument("--with-uniform", action="store_true", help="add the best fitting uniform configuration")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    configs = (
        band_random(a.n, a.seed, a.budget)
        if a.kind == "band"
        else best_fitting(a.table, a.k, a.budget, a.metric, a.with_uniform)
    )
    write(a.out, configs)
    print(f"{len(configs)} configurations -> {a.out}")


if __name__ == "__main__":
    main()
