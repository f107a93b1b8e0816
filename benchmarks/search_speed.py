"""Search speed: wall seconds of one full two-stage AutoQRA search against a predictor, at one budget.

Runs :func:`qra_bench.search.autoqra_search` (Stage 1 evolution with its default settings, then Stage 2
trust-region BO under SMAC3, predictor only) and prints, side by side: the one-off import of SMAC3 (and dask,
which it imports), the search itself per seed, the predictor's rows and calls, and what the search found. The
target is at most 10 s per search on 2 CPU cores; the process CPU time is printed too, since wall time on a
shared machine grows with everything else it runs.

Default predictor: the analytic stand-in (``tests/standin.py``), a made-up function for timing and
testing; its "quality" numbers are not results. With ``--surrogate DIR`` a fitted surrogate artifact
(:class:`qra_bench.surrogate.SurrogateArtifact`) predicts instead, on its own search space.

Usage: ``python benchmarks/search_speed.py [--arch llama-3.1-8b] [--budget uniform-4bit] [--seeds 3]
[--surrogate DIR] [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

#: The analytic stand-in is a test fixture: it lives under tests/, not in the package.
TESTS_DIR = Path(__file__).resolve().parents[1] / "tests"


def _surrogate_predictor(directory: str):
    from qra_bench.surrogate import SurrogateArtifact

    art = SurrogateArtifact.load(directory)
    if art.multi_fidelity:
        sys.exit(f"{directory}: a multi-fidelity surrogate needs low-fidelity observations; give a final-fidelity one")
    sign = 1.0 if art.higher_is_better else -1.0  # the search maximizes

    def predict(bit_idx, rank_idx):
        mean, std = art.predict_indices(bit_idx, rank_idx)
        return sign * mean, std

    return art, predict


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="llama-3.1-8b", help="architecture preset (the memory model's shapes)")
    ap.add_argument("--budget", default="uniform-4bit")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--surrogate", default=None, help="directory of a fitted surrogate artifact")
    ap.add_argument("--quick", action="store_true", help="one seed (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.seeds = 1

    t0 = time.perf_counter()
    from qra_bench.arch import load_arch
    from qra_bench.memory import MemoryModel
    from qra_bench.search import autoqra_search

    sys.path.insert(0, str(TESTS_DIR))
    from standin import AnalyticStandIn

    t_pkg = time.perf_counter() - t0
    t0 = time.perf_counter()
    import smac  # noqa: F401  - timed on its own: paid once per process

    t_smac = time.perf_counter() - t0

    arch = load_arch(args.arch)
    if args.surrogate:
        art, predictor = _surrogate_predictor(args.surrogate)
        space = art.space
        if space.n_blocks != arch.n_blocks:
            sys.exit(f"surrogate space has {space.n_blocks} blocks, --arch {args.arch} has {arch.n_blocks}")
        mm = MemoryModel(arch, space=space)
        standin = AnalyticStandIn(space)
        priors = standin.priors()  # the surrogate ships no priors; the stand-in's block pattern stands in
        label = f"surrogate {args.surrogate} ({art.target})"
    else:
        mm = MemoryModel(arch)
        space = mm.space
        standin = AnalyticStandIn(space)
        predictor, priors = standin, standin.priors()
        label = "analytic stand-in (test fixture, not a result)"
    budget = mm.budget(args.budget)

    print(f"predictor      {label}")
    print(
        f"problem        {arch.name}, {space.n_blocks} blocks, bits {list(space.bits)}, ranks {list(space.ranks)}, "
        f"budget {budget.name} = {budget.bytes:,} bytes"
    )
    print(f"{'import qra_bench.search':<28}{t_pkg:>8.2f} s")
    print(f"{'import smac (once)':<28}{t_smac:>8.2f} s")
    walls = []
    for seed in range(args.seeds):
        t0, c0 = time.perf_counter(), time.process_time()
        res = autoqra_search(space, mm, budget, predictor, priors, seed=seed)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        walls.append(wall)
        n1 = sum(r.stage == "stage1" for r in res.history)
        n2 = sum(r.stage == "stage2" for r in res.history)
        print(
            f"{f'search seed {seed}':<28}{wall:>8.2f} s   (CPU {cpu:.2f} s) stage-1 promoted {n1}, stage-2 asks {n2}, "
            f"predictor {res.n_predictor_rows} rows in {res.n_predictor_calls} calls, stopped by {res.stopped_by}; "
            f"incumbent predicted {res.predicted_mean:.4f}, avg bits {res.incumbent.avg_bits:.2f}, "
            f"avg rank {res.incumbent.avg_rank:.2f}, {res.memory.total / budget.bytes:.4f} of the budget"
        )
    print(
        f"{'search, mean over seeds':<28}{sum(walls) / len(walls):>8.2f} s   (max {max(walls):.2f} s; target <= 10 s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
