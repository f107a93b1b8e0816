"""Surrogate prediction speed: batched predictions per second and single-query latency, XGBoost vs GP.

Both models are fitted on a results table's rows (no cross-validation: only the fitted estimator matters
here). Every prediction starts from rung-index arrays, as the search produces them, and goes through the
feature encoder and the estimator, mean and standard deviation both:

- batched: ``--n`` random configurations in one call (the GP in chunks of 2,000; it needs an
  (n, n_train) kernel block per chunk), best of ``--repeats`` runs;
- single query: one configuration per call, the median over ``--calls`` calls.

Targets (for the XGBoost ensemble on 2 cores): >= 100,000 predictions/s batched and <= 2 ms per
single query. Run::

    .venv/bin/python benchmarks/surrogate_speed.py --table tests/fixtures/tiny-news-small
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TABLE = REPO / "tests" / "fixtures" / "tiny-news-small"
TARGET_BATCH_PER_S = 100_000
TARGET_SINGLE_MS = 2.0
GP_CHUNK = 2_000


def _batched_rate(artifact, bi: np.ndarray, ri: np.ndarray, chunk: int | None, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        step = chunk or len(bi)
        for lo in range(0, len(bi), step):
            mean, std = artifact.predict_indices(bi[lo : lo + step], ri[lo : lo + step], 1.0)
        best = min(best, time.perf_counter() - start)
    assert np.all(np.isfinite(mean)) and np.all(std > 0)
    return len(bi) / best


def _single_latency_ms(artifact, bi: np.ndarray, ri: np.ndarray, calls: int) -> float:
    times = np.empty(calls)
    for i in range(calls):
        b, r = bi[i % len(bi)][None, :], ri[i % len(ri)][None, :]
        start = time.perf_counter()
        artifact.predict_indices(b, r, 1.0)
        times[i] = time.perf_counter() - start
    return float(np.median(times) * 1e3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=str(DEFAULT_TABLE), help="results table to fit on (default: %(default)s)")
    parser.add_argument("--target", default="eval_loss")
    parser.add_argument("--n", type=int, default=100_000, help="configurations per batched call")
    parser.add_argument("--gp-n", type=int, default=10_000, help="configurations for the GP's batched rate")
    parser.add_argument("--calls", type=int, default=1000, help="single-query calls (median reported)")
    parser.add_argument("--repeats", type=int, default=3, help="batched runs (best reported)")
    parser.add_argument("--threads", type=int, default=1, help="XGBoost threads for prediction")
    parser.add_argument(
        "--quick", action="store_true", help="2,000 configurations, 50 single calls, one run (a smoke run)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.gp_n, args.calls, args.repeats = 2_000, 500, 50, 1

    from qra_bench.errors import QRBenchError
    from qra_bench.surrogate import SurrogateArtifact, make_estimator
    from qra_bench.surrogate.fit import training_set

    if not Path(args.table).exists():
        print(f"no table at {args.table}; pass --table", file=sys.stderr)
        return 2
    try:
        ts = training_set(args.table, target=args.target)
    except QRBenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = ts.data
    print(
        f"table {args.table}: {data.n} rows, {len(np.unique(data.groups))} configurations, "
        f"{len(ts.feature_names)} features; {os.cpu_count()} CPUs visible, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )

    rows = []
    for kind in ("xgb", "gp"):
        estimator = make_estimator(kind, seed=0)
        start = time.perf_counter()
        estimator.fit(data.X, data.y, groups=data.groups)
        fit_s = time.perf_counter() - start
        if kind == "xgb":
            estimator.set_nthread(args.threads)
        artifact = SurrogateArtifact(ts.encoder_spec, estimator, {"features": ts.feature_names})
        space = artifact.space
        n = args.n if kind == "xgb" else min(args.n, args.gp_n)
        bi, ri = space.sample_indices(np.random.default_rng(0), n)
        rate = _batched_rate(artifact, bi, ri, None if kind == "xgb" else GP_CHUNK, args.repeats)
        latency = _single_latency_ms(artifact, bi, ri, args.calls)
        rows.append((kind, fit_s, n, rate, latency))

    print()
    print(
        f"{'model':<6}{'fit s':>8}{'batch n':>9}{'predictions/s':>15}{'vs 100k/s':>11}{'single ms':>11}{'vs 2 ms':>9}"
    )
    for kind, fit_s, n, rate, latency in rows:
        print(
            f"{kind:<6}{fit_s:>8.2f}{n:>9,}{rate:>15,.0f}{rate / TARGET_BATCH_PER_S:>10.2f}x"
            f"{latency:>11.3f}{TARGET_SINGLE_MS / latency:>8.2f}x"
        )
    (_, _, _, xr, xl), (_, _, _, gr, gl) = rows
    print(
        f"\nxgb / gp: {xr / gr:.1f}x the batched rate, {gl / xl:.1f}x lower single-query latency. "
        f"Targets apply to xgb: batched {'met' if xr >= TARGET_BATCH_PER_S else 'NOT met'}, "
        f"single query {'met' if xl <= TARGET_SINGLE_MS else 'NOT met'} "
        f"(x = measured / target for rate, target / measured for latency; > 1 is better)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
