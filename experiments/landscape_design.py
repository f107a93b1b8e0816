"""Write the landscape design: random configurations that fit the ``uniform-4bit`` budget.

Configurations are drawn uniformly over the tiny model's space (bits {2,3,4,8,16}, ranks {4,8,16}) and kept
when the memory model of the trials themselves (the bit-packed layout, float32 on CPU, the task's batch and
sequence length: what every table row records and the benchmark's budget uses) says they fit uniform-4bit;
uniform configurations are excluded (they are the anchors). Deterministic for the seed. The repeats design
(the noise floor) is the first ``--repeats`` of them.

    python experiments/landscape_design.py --n 30 --repeats 10 --out experiments/designs/landscape.jsonl
    python experiments/landscape_design.py --n 180 --out experiments/designs/landscape-180.jsonl

The draw is sequential, so the first 30 of the 180 are ``landscape.jsonl`` (``cipher`` runs all 180: the
uniform-within-budget sample of the landscape criteria).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from qra_bench.arch import load_arch
from qra_bench.memory import MemoryModel
from qra_bench.space import SearchSpace


def trial_memory_model(arch, space: SearchSpace, task: str = "news") -> MemoryModel:
    """The memory model a CPU trial of the default recipe records (``qra_bench.trial.memory_settings``)."""
    import torch

    from qra_bench.models import load_base
    from qra_bench.tasks import load_task
    from qra_bench.trial import TrialSettings, memory_settings

    seq_len = load_task(task, load_base(arch.name).tokenizer).seq_len
    return MemoryModel(arch, memory_settings(TrialSettings(), torch.float32, seq_len), space)


def feasible_random(n: int, seed: int, budget: str = "uniform-4bit", arch_name: str = "tiny") -> list:
    arch = load_arch(arch_name)
    space = SearchSpace(arch.n_blocks)
    mm = trial_memory_model(arch, space)
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
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    configs = feasible_random(a.n, a.seed)
    for path, chosen in ((a.out, configs), (a.out.replace(".jsonl", "-repeats.jsonl"), configs[: a.repeats])):
        with open(path, "w") as fh:
            for cfg in chosen:
                fh.write(json.dumps({"bits": list(cfg.bits), "ranks": list(cfg.ranks)}) + "\n")


if __name__ == "__main__":
    main()
