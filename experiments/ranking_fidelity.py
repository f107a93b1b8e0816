"""Does the surrogate benchmark rank the bundled optimizers as the real one does?

The same optimizers, seeds, budget and evaluation count run twice: on the ``table+live`` backend (a table row
where the configuration was run, a real trial otherwise; its rows are appended to the table) and on the
``surrogate`` backend. Each optimizer's score is its mean over seeds of the best ``eval_loss`` found; the
Kendall tau between the two orderings is the ranking fidelity. The live side is slow (a real trial per new
configuration), so it is run with ``qra-bench bench --backend table+live`` -- split over several processes if
you like -- and this script reads those runs' ``evaluations.csv``::

    qra-bench bench --benchmark datasets_cache/tables/tiny-news --backend table+live --optimizers autoqra,random \\
        --seeds 0-2 --max-evals 8 --max-cost inf --out runs/ranking-live-a
    python experiments/ranking_fidelity.py --live runs/ranking-live-a runs/ranking-live-b

The surrogate side runs here, with the optimizers, seeds and evaluation count read from the live runs.
Writes ``experiments/results/ranking_fidelity.md`` (and ``.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"


def read_live_runs(dirs) -> tuple[list[dict], pd.DataFrame]:
    """The ``bench.json`` of each finished ``table+live`` run and all their evaluations in one frame; a user
    error for a directory that is not such a run."""
    from qra_bench.errors import QRBenchError

    infos, frames = [], []
    for d in map(Path, dirs):
        if not (d / "evaluations.csv").is_file() or not (d / "bench.json").is_file():
            raise QRBenchError(f"{d} is not a finished `qra-bench bench` output (no evaluations.csv / bench.json)")
        infos.append(json.loads((d / "bench.json").read_text()))
        if infos[-1]["spec"]["backend"] != "table+live":
            raise QRBenchError(f"{d} ran on the {infos[-1]['spec']['backend']} backend; this needs table+live runs")
        frames.append(pd.read_csv(d / "evaluations.csv"))
    return infos, pd.concat(frames, ignore_index=True)


def best_per_run(evals: pd.DataFrame, max_evals: int) -> pd.DataFrame:
    """(optimizer, seed) -> lowest eval_loss among the first ``max_evals`` answers."""
    e = evals[evals["eval"] <= max_evals]
    return e.groupby(["optimizer", "seed"], as_index=False)["eval_loss"].min().rename(columns={"eval_loss": "best"})


def kendall(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    """Kendall tau-b (and its p-value) between two scores over the same index."""
    from scipy.stats import kendalltau

    res = kendalltau(a.to_numpy(), b.loc[a.index].to_numpy())
    return float(res.statistic), float(res.pvalue)


def main(argv=None) -> int:
    from qra_bench.harness.report import evaluations_frame
    from qra_bench.harness.runner import run_benchmark
    from qra_bench.harness.spec import BenchSpec
    from qra_bench.errors import QRBenchError

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--live", nargs="+", required=True, help="output directories of table+live `qra-bench bench` runs")
    ap.add_argument("--surrogate", default="xgb", help="surrogate kind of the benchmark (default xgb)")
    ap.add_argument("--out", default=str(RESULTS), help="results directory")
    args = ap.parse_args(argv)
    try:
        infos, live = read_live_runs(args.live)
        specs = [i["spec"] for i in infos]
        keys = {(tuple(s["seeds"]), s["max_evals"], tuple(s["budgets"]), s["metric"]) for s in specs}
        if len(keys) != 1:
            raise QRBenchError(f"the live runs differ in seeds, max evals, budgets or metric: {sorted(keys)}")
        seeds, max_evals, budgets, _ = keys.pop()
        table = infos[0]["benchmark"]["table"]
        optimizers = tuple(dict.fromkeys(live["optimizer"]))
        spec = BenchSpec(
            benchmark=table,
            backend="surrogate",
            optimizers=optimizers,
            seeds=seeds,
            budgets=budgets,
            max_cost_s=math.inf,
            max_evals=max_evals,
            metric="eval_loss",
            surrogate=args.surrogate,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = run_benchmark(spec, plots=False)
    except QRBenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sur = evaluations_frame(report.runs)
    a = best_per_run(live, max_evals).groupby("optimizer")["best"].agg(["mean", "sem"])
    b = best_per_run(sur, max_evals).groupby("optimizer")["best"].agg(["mean", "sem"])
    tau, p = kendall(a["mean"], b["mean"])
    answered = live["backend"].value_counts().to_dict()
    art = report.benchmarks[budgets[0]].surrogates["eval_loss"]
    rows = []
    for name in sorted(a.index, key=lambda n: a.loc[n, "mean"]):
        rows.append(
            f"| {name} | {a.loc[name, 'mean']:.4f} ± {a.loc[name, 'sem']:.4f} | "
            f"{int(a['mean'].rank(method='min')[name])} | {b.loc[name, 'mean']:.4f} ± {b.loc[name, 'sem']:.4f} | "
            f"{int(b['mean'].rank(method='min')[name])} |"
        )
    md = [
        "# Ranking fidelity: surrogate benchmark vs table + live trials",
        "",
        f"Optimizers {', '.join(optimizers)}; budget {', '.join(budgets)}; seeds {', '.join(map(str, seeds))}; "
        f"{max_evals} evaluations per run. Score: mean over seeds of the best eval_loss found (nats, lower is "
        "better) ± standard error.",
        "",
        "| optimizer | table + live | rank | surrogate | rank |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"**Kendall tau between the two rankings: {tau:.3f}** (p = {p:.3f}, {len(a)} optimizers).",
        "",
        "Answers on the table + live side: " + ", ".join(f"{n} from {k}" for k, n in sorted(answered.items())) + ".",
        "",
        "## Source",
        "",
        f"- table: `{table}`, content hash at the live runs' start "
        + ", ".join(sorted({f"`{i['benchmark']['table_content_hash'][:16]}…`" for i in infos})),
        f"- surrogate: {art.manifest['model']['kind']} of eval_loss bound to table hash `{art.table_hash[:16]}…`",
        f"- live runs: {', '.join(f'`{d}`' for d in args.live)}",
        "- regenerate: `python experiments/ranking_fidelity.py --live " + " ".join(args.live) + "`",
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ranking_fidelity.md").write_text("\n".join(md) + "\n")
    (out / "ranking_fidelity.json").write_text(
        json.dumps(
            {
                "kendall_tau": tau,
                "p": p,
                "optimizers": list(optimizers),
                "seeds": list(seeds),
                "max_evals": max_evals,
                "live_mean_best": a["mean"].to_dict(),
                "surrogate_mean_best": b["mean"].to_dict(),
                "answered": answered,
            },
            indent=1,
        )
        + "\n"
    )
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
