"""Write the landscape design: random configurations that fit the ``uniform-4bit`` budget.

Configurations are drawn uniformly over the tiny model's space (bits {2,3,4,8,16}, ranks {4,8,16}) and kept
when the memory model (HQQ's packed layout, the deployment budget every optimizer uses) says they fit
uniform-4bit; uniform configurations are excluded (they are the anchors). Deterministic for the seed.

    python experiments/landscape_design.py --n 30 --out experiments/designs/landscape.jsonl
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from qra_bench.arch import load_arch
from qra_bench.memory import MemoryModel, MemorySettings
from qra_bench.space import SearchSpace


def feasible_random(n: int, seed: int, budget: str = "uniform-4bit", arch_name: str = "tiny") -> list:
    arch = load_arch(arch_name)
    space = SearchSpace(arch.n_blocks)
    mm = MemoryModel(arch, MemorySettings(backend="hqq"), space)
    limit = mm.budget(budget).bytes
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    while len(out) < n:
        bi, ri = space.sample_indices(rng, 4096)
        ok = mm.total_bytes_batch(bi, ri) <= limit
        for b, r in zip(bi[ok], ri[ok]):
            cfg = space.from_indices(b, r)
            if len(set(cfg.bits)) > 1 and len(set(cfg.ranks)) > 1 and cfg.hash not in seen:
                seen.add(cfg.hash)
                out.append(cfg)
                if len(out) == n:
                    break
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    with open(a.out, "w") as fh:
        for cfg in feasible_random(a.n, a.seed):
            fh.write(json.dumps({"bits": list(cfg.bits), "ranks": list(cfg.ranks)}) + "\n")


if __name__ == "__main__":
    main()
