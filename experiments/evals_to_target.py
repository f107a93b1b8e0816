"""Evaluations to target on a scenario, with no leaked answers.

Each method runs once per seed through the benchmark's ask/tell loop for at most ``--max-evals`` evaluations.
No method sees a full-fidelity answer it has not paid for: random search and SMAC3 start blind; AutoQRA screens
with a model fitted only on the table's low-fidelity rows (<= 50 % of the run, :mod:`qra_bench.surrogate.screen`)
and learns the rest from its own evaluations (the paper's surrogate-first form). ``autoqra-warm`` is AutoQRA
warm-started from the scenario's surrogate fitted on the whole table, full-fidelity rows included: it knows the
answers and is reported separately, labelled as such.

Backends:

``table+live``  a configuration the table holds is answered by its measured mean; any other is fine-tuned for
                real and appended to the scenario's table (so these runs also grow it).
``surrogate``   the scenario's xgb surrogate answers every configuration (no training).

Target: the best known mean minus a tolerance of 2 x the seed noise (for a loss: plus). On ``table+live`` the
best known is the best mean over >= 3 seeds of any configuration that fits (the scenario's difficulty card,
read on the table after the runs); on ``surrogate`` it is the best prediction over the table's fitting
configurations and every evaluated one. A run that never reaches the target is censored at ``max_evals + 1``
and its count is a lower bound.

Every run writes ``<out>/<backend>/runs/<method>-<seed>.csv`` when it finishes, so a rerun resumes;
the analysis (skipped with ``--no-analysis``) writes ``<out>/<backend>/evals_to_target.md`` and ``.json``;
``--compare BACKEND`` adds how the other backend's runs, read at the same budget, order the same methods (a pair
of methods with equal medians and best answers within the seed noise is a tie; the orders agree when no pair is
reversed).

    python experiments/evals_to_target.py --backend table+live --methods autoqra,random,smac-hpo --seeds 0-9
    python experiments/evals_to_target.py --backend table+live --no-run --compare surrogate   # orders agree?
    python experiments/evals_to_target.py --backend surrogate \\
        --methods autoqra,autoqra-warm,random,smac-hpo,evolution,optuna-tpe --seeds 0-9
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
WARM = "autoqra-warm"


def _out_dir(out: Path, backend: str) -> Path:
    return out / backend.replace("+", "-")


def run_methods(
    scenario: str, backend: str, methods: list[str], seeds: list[int], max_evals: int, out: Path, say=print
) -> None:
    """Run every (method, seed) that has no result file yet; write each run's evaluations as it finishes."""
    from qra_bench.harness import Benchmark
    from qra_bench.harness.runner import run_one
    from qra_bench.harness.spec import BenchSpec
    from qra_bench.scenarios import get_scenario
    from qra_bench.harness import outside_optimizers  # noqa: F401  (registers optuna-tpe and smac)
    from qra_bench.surrogate.screen import low_fidelity_screen

    sc = get_scenario(scenario, complete=False)
    runs = _out_dir(out, backend) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    # seed-major: an interrupted run leaves every method at the same seeds (paired), the rest for a rerun
    todo = [(m, s) for s in seeds for m in methods if not (runs / f"{m}-{s}.csv").is_file()]
    if not todo:
        return
    bench = Benchmark.load(sc.name, backend=backend)
    screen = low_fidelity_screen(sc.table_path(), sc.metric, 0.5)
    kwargs: dict = {"autoqra": {"predictor": screen}}
    if WARM in methods:
        from qra_bench.surrogate import SurrogateArtifact

        art = SurrogateArtifact.load(sc.surrogate_path("xgb"), table_path=sc.table_path(), allow_hash_mismatch=True)
        sign = 1.0 if art.higher_is_better else -1.0

        def warm(bit_idx: np.ndarray, rank_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            mean, std = art.predict_indices(np.atleast_2d(bit_idx), np.atleast_2d(rank_idx), 1.0)
            return sign * np.asarray(mean, float), np.asarray(std, float)

        kwargs[WARM] = {"predictor": warm}
    for method, seed in todo:
        name = "autoqra" if method == WARM else method
        spec = BenchSpec(
            benchmark=sc.name,
            backend=backend,
            optimizers=(name,),
            seeds=(seed,),
            budgets=(sc.budget,),
            max_cost_s=math.inf,
            max_evals=max_evals,
            metric=sc.metric,
            optimizer_kwargs={name: kwargs[method]} if method in kwargs else {},
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            record = run_one(name, bench, seed, spec)
        frame = pd.DataFrame([{**e.__dict__, "optimizer": method} for e in record.evaluations])
        frame["screen"] = screen.note if method == "autoqra" else ("full-table surrogate" if method == WARM else "")
        frame["table_hash_at_start"] = bench.content_hash
        tmp = runs / f".{method}-{seed}.csv.tmp"
        frame.to_csv(tmp, index=False, float_format="%.8g")
        tmp.replace(runs / f"{method}-{seed}.csv")
        live = int((frame["backend"] == "live").sum())
        best = frame["eval_loss"].min() if sc.metric == "eval_loss" else frame["accuracy"].max()
        say(f"{method} seed {seed}: {len(frame)} evaluations ({live} live), best {sc.metric} {best:.4f}")


def evals_to_target(frame: pd.DataFrame, target: float, higher: bool, cap: int) -> pd.DataFrame:
    """Per (method, seed), on the first ``cap`` evaluations of each run: the first evaluation whose answer reaches
    ``target`` (``cap + 1`` when none did) and the best answer (metric units)."""
    rows = []
    for (method, seed), g in frame[frame["eval"] <= cap].sort_values("eval").groupby(["optimizer", "seed"]):
        value = g["accuracy" if higher else "eval_loss"].to_numpy(float)
        hit = np.flatnonzero(value >= target if higher else value <= target)
        rows.append(
            {
                "method": method,
                "seed": int(seed),
                "n_evals": len(g),
                "first": int(g["eval"].to_numpy()[hit[0]]) if len(hit) else cap + 1,
                "reached": bool(len(hit)),
                "best": float(value.max() if higher else value.min()),
            }
        )
    return pd.DataFrame(rows)


def method_order(summary: dict, higher: bool) -> list[str]:
    """Methods from best to worst: fewer median evaluations to target, then (between runs that tie, censored ones
    included) the better median of the best answer within the budget."""
    return sorted(
        summary,
        key=lambda m: (summary[m]["median"], -summary[m]["median_best"] if higher else summary[m]["median_best"]),
    )


def _median_text(v: pd.Series, cap: int) -> str:
    med = float(np.median(v))
    return f"> {cap}" if med > cap else f"{med:g}"


def pair_sign(summary: dict, a: str, b: str, noise: float, higher: bool) -> int:
    """+1 when method ``a`` beats ``b`` (fewer median evaluations to target; at equal medians, censored ones
    included, a better median best answer by at least ``noise``), -1 when ``b`` beats ``a``, 0 for a tie."""
    if summary[a]["median"] != summary[b]["median"]:
        return 1 if summary[a]["median"] < summary[b]["median"] else -1
    gain = summary[a]["median_best"] - summary[b]["median_best"]
    gain = gain if higher else -gain
    return 0 if abs(gain) < noise else (1 if gain > 0 else -1)


def order_agreement(summary: dict, other: dict, noise: float, higher: bool) -> dict:
    """How two backends' readings (per-method summaries) order the methods they share: each backend's strict
    order (:func:`method_order`), Kendall's tau between them, and per pair of methods whether the backends agree,
    one of them ties (within ``noise``) or they disagree. The orders agree when no pair is reversed."""
    from itertools import combinations

    from scipy.stats import kendalltau

    a = [m for m in method_order(summary, higher) if m in other]
    b = [m for m in method_order(other, higher) if m in summary]
    tau = float(kendalltau([a.index(m) for m in a], [b.index(m) for m in a]).statistic) if len(a) >= 2 else math.nan
    pairs = {"same": [], "tied": [], "reversed": []}
    for x, y in combinations(a, 2):
        s1, s2 = pair_sign(summary, x, y, noise, higher), pair_sign(other, x, y, noise, higher)
        pairs["tied" if s1 * s2 == 0 else "same" if s1 == s2 else "reversed"].append(f"{x}/{y}")
    return {"order": a, "other_order": b, "kendall_tau": tau, "pairs": pairs, "agree": not pairs["reversed"]}


def summarize(scenario: str, backend: str, out: Path, max_evals: int) -> dict:
    """Read one backend's runs at ``max_evals``: best known answer, target, evaluations to target per method and
    seed, per-method medians and the method order (no files written)."""
    from qra_bench.errors import QRBenchError
    from qra_bench.scenarios import compute_scenario_card, get_scenario

    sc = get_scenario(scenario, complete=False)
    d = _out_dir(out, backend)
    files = sorted((d / "runs").glob("*.csv"))
    if not files:
        raise QRBenchError(f"no {backend} runs under {d / 'runs'}")
    frame = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    card, bench = compute_scenario_card(sc)
    higher = card.higher_is_better
    if backend == "surrogate":
        from qra_bench.harness import Benchmark

        sb = Benchmark.load(sc.name, backend="surrogate")
        pool = sb.pool()
        preds = [sb.objective(c, 1.0, 0) for c in pool]
        values = [p.accuracy if higher else p.eval_loss for p in preds]
        values += list(frame["accuracy" if higher else "eval_loss"])
        best = max(values) if higher else min(values)
        best_text = "the best surrogate prediction over the table's fitting configurations and every evaluated one"
    else:
        best = card.best_mixed.mean if card.best_mixed else math.nan
        if card.best_uniform and (
            card.best_mixed is None or (card.best_uniform.mean > best if higher else card.best_uniform.mean < best)
        ):
            best = card.best_uniform.mean
        best_text = "the best mean over >= 3 seeds of any fitting configuration in the table after the runs"
    target = best - card.tolerance if higher else best + card.tolerance
    e2t = evals_to_target(frame, target, higher, max_evals)
    summary: dict = {}
    for method, g in e2t.groupby("method"):
        summary[method] = {
            "median": float(np.median(g["first"])),
            "reached": int(g["reached"].sum()),
            "runs": int(len(g)),
            "mean": float(g["first"].mean()),
            "censored_median": bool(np.median(g["first"]) > max_evals),
            "median_best": float(np.median(g["best"])),
        }
    return {
        "sc": sc,
        "card": card,
        "bench": bench,
        "frame": frame,
        "best": best,
        "best_text": best_text,
        "target": target,
        "e2t": e2t,
        "summary": summary,
        "order": method_order(summary, higher),
    }


def analyze(
    scenario: str, backend: str, out: Path, max_evals: int, command: str, compare: Optional[str] = None
) -> dict:
    """Target, evaluations to target per method and seed, medians, ratios and paired tests; writes the report.
    With ``compare``, the same reading of that backend's runs and how its method order agrees with this one."""
    from scipy.stats import wilcoxon

    r = summarize(scenario, backend, out, max_evals)
    sc, card, bench, frame, e2t, summary = r["sc"], r["card"], r["bench"], r["frame"], r["e2t"], r["summary"]
    best, target, order = r["best"], r["target"], r["order"]
    d = _out_dir(out, backend)
    lines = [
        f"# Evaluations to target: scenario `{sc.name}`, backend `{backend}`",
        "",
        f"Table `{sc.table}` hash `{bench.content_hash}` (after the runs); budget `{sc.budget}`; metric "
        f"`{sc.metric}`; at most {max_evals} evaluations per run. Best known {card.metric}: {best:.4f} "
        f"({r['best_text']}); seed noise {card.noise_std:.4f}; target {target:.4f} (2 x noise). A run that never "
        f"reaches it counts as {max_evals + 1} (censored: its count is a lower bound).",
        "",
        "No method sees a full-fidelity answer it has not paid for: `autoqra` screens with a model of the "
        "table's low-fidelity rows (<= 50 % of the run) and learns the rest from its own evaluations; `random` "
        "and `smac-hpo` (SMAC3 alone) start blind. `autoqra-warm` is warm-started from the surrogate fitted on "
        "the whole table (it has seen the answers) and is reported apart.",
        "",
        f"| method | median evaluations to target | runs that reached it | mean (censored at max + 1) | "
        f"median best {card.metric} within {max_evals} |",
        "|---|---|---|---|---|",
    ]
    for method, v in summary.items():
        lines.append(
            f"| {method} | {_median_text(e2t[e2t.method == method]['first'], max_evals)} | "
            f"{v['reached']}/{v['runs']} | {v['mean']:.1f} | {v['median_best']:.4f} |"
        )
    lines += [
        "",
        f"Order (fewest evaluations to target; ties, censored ones included, broken by the best answer within "
        f"{max_evals}): {' < '.join(order)}.",
    ]
    ref = summary.get("autoqra")
    tests = {}
    if ref:
        lines += [
            "",
            "Ratios of medians (baseline / autoqra; '>=' where the baseline's median is censored) and "
            "paired Wilcoxon signed-rank tests over seeds (censored counts at max + 1, which understates "
            "the baselines):",
            "",
        ]
        a = e2t[e2t.method == "autoqra"].set_index("seed")["first"]
        for method in summary:
            if method in ("autoqra", WARM):
                continue
            b = e2t[e2t.method == method].set_index("seed")["first"]
            common = a.index.intersection(b.index)
            ratio = summary[method]["median"] / max(ref["median"], 1.0)
            p = (
                float(wilcoxon(b[common], a[common]).pvalue)
                if len(common) >= 2 and (b[common] != a[common]).any()
                else math.nan
            )
            tests[method] = {"ratio": ratio, "ratio_is_lower_bound": summary[method]["censored_median"], "p": p}
            bound = ">= " if summary[method]["censored_median"] else ""
            lines.append(f"- {method} / autoqra: {bound}{ratio:.1f} (p = {p:.3g}, {len(common)} paired seeds)")
    agreement = None
    if compare:
        o = summarize(scenario, compare, out, max_evals)
        agreement = order_agreement(summary, o["summary"], card.noise_std, card.higher_is_better)
        medians = ", ".join(f"{m} {o['summary'][m]['median_best']:.4f}" for m in agreement["other_order"])
        pairs = agreement["pairs"]
        lines += [
            "",
            f"The `{compare}` backend's runs read at the same {max_evals} evaluations (its own target "
            f"{o['target']:.4f}) order the shared methods {' < '.join(agreement['other_order'])} (median best: "
            f"{medians}); this backend: {' < '.join(agreement['order'])} (Kendall tau "
            f"{agreement['kendall_tau']:.2f}). Pairs ordered the same way: {', '.join(pairs['same']) or 'none'}; "
            f"tied on one backend (equal medians and best answers within the seed noise, {card.noise_std:.4f}): "
            f"{', '.join(pairs['tied']) or 'none'}; reversed: {', '.join(pairs['reversed']) or 'none'}. "
            f"The orders {'agree' if agreement['agree'] else 'disagree'}.",
        ]
    n_live = int((frame["backend"] == "live").sum())
    lines += [
        "",
        f"{len(frame)} evaluations in all, {n_live} of them live trials appended to the table.",
        "",
        f"Regenerate: `{command}`",
        "",
    ]
    (d / "evals_to_target.md").write_text("\n".join(lines))
    record = {
        "scenario": sc.name,
        "backend": backend,
        "table_hash": bench.content_hash,
        "best_known": best,
        "target": target,
        "noise": card.noise_std,
        "max_evals": max_evals,
        "summary": summary,
        "order": order,
        "compare": {"backend": compare, **agreement} if agreement else None,
        "tests": tests,
        "per_run": e2t.to_dict(orient="records"),
    }
    (d / "evals_to_target.json").write_text(json.dumps(record, indent=1, default=float) + "\n")
    return record


def main(argv: Optional[list[str]] = None) -> int:
    from qra_bench.cli import int_list
    from qra_bench.errors import QRBenchError
    from qra_bench.scenarios import SCENARIOS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default=next(s.name for s in SCENARIOS if s.headline))
    p.add_argument("--backend", default="table+live", choices=("table+live", "surrogate"))
    p.add_argument("--methods", default="autoqra,random,smac-hpo")
    p.add_argument("--seeds", default="0-9")
    p.add_argument("--max-evals", type=int, default=20)
    p.add_argument("--out", default=str(RESULTS / "e2t"))
    p.add_argument("--no-run", action="store_true", help="only analyze the runs already written")
    p.add_argument("--no-analysis", action="store_true", help="only run (several processes may share the work)")
    p.add_argument(
        "--compare",
        choices=("table+live", "surrogate"),
        help="also read that backend's runs at the same --max-evals and report whether the method orders agree",
    )
    a = p.parse_args(argv)
    try:
        if a.max_evals < 1:
            raise QRBenchError(f"--max-evals must be >= 1, got {a.max_evals}")
        seeds = list(int_list(a.seeds, "seeds"))
        methods = [m.strip() for m in a.methods.split(",") if m.strip()]
        out = Path(a.out) / a.scenario
        if not a.no_run:
            run_methods(
                a.scenario,
                a.backend,
                methods,
                seeds,
                a.max_evals,
                out,
                say=lambda line: print(line, file=sys.stderr, flush=True),
            )
        if a.no_analysis:
            return 0
        command = (
            f"python experiments/evals_to_target.py --scenario {a.scenario} --backend {a.backend} "
            f"--methods {a.methods} --seeds {a.seeds} --max-evals {a.max_evals}"
            + (f" --out {a.out}" if Path(a.out).resolve() != (RESULTS / "e2t").resolve() else "")
        )
        if a.compare == a.backend:
            raise QRBenchError(f"--compare names the backend being analyzed ({a.backend}); name the other one")
        analyze(
            a.scenario,
            a.backend,
            out,
            a.max_evals,
            command + (f" --compare {a.compare}" if a.compare else ""),
            a.compare,
        )
    except QRBenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print((_out_dir(Path(a.out) / a.scenario, a.backend) / "evals_to_target.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
