"""``qra-bench bench``, ``run`` and ``scenarios``: benchmarks of optimizers, the main job, the shipped scenarios."""

from __future__ import annotations

from typing import Optional

import typer

from qra_bench.cli.options import int_list
from qra_bench.defaults import DEFAULT_TASK

__all__ = ["bench", "run", "scenarios"]


def bench(
    out: str = typer.Option(..., help="Output directory: curves, leaderboard, plots."),
    benchmark: str = typer.Option(
        f"tiny-{DEFAULT_TASK}",
        help="Table name under the data root ($QRA_BENCH_DATA/tables/<name>, else the checkout's datasets_cache/tables/<name>) or a table directory or file.",
    ),
    backend: str = typer.Option(
        "surrogate",
        help="surrogate (any configuration), table (pool-based optimizers only), "
        "table+live (real trials for configurations the table lacks), live.",
    ),
    optimizers: str = typer.Option(
        "autoqra,random,smac,evolution,optuna-tpe", help="Comma-separated registered optimizers."
    ),
    seeds: str = typer.Option("0-9", help="Seeds: 0 or 0,1,2 or 0-9; each optimizer runs once per seed and budget."),
    budgets: Optional[str] = typer.Option(
        None, help="Comma-separated memory budgets (uniform-4bit, 0.8xfp16-lora, 60MiB); default: the scenario's."
    ),
    max_cost: str = typer.Option("2h", help="Simulated cost per run: 2h, 90m, 7200 (seconds) or inf."),
    max_evals: Optional[int] = typer.Option(None, help="Evaluations per run (default: until the cost runs out)."),
    fidelity: float = typer.Option(1.0, help="Fraction of the full run every evaluation is at."),
    metric: Optional[str] = typer.Option(
        None, help="eval_loss (lower is better) or accuracy; default: the task's main metric (news: eval_loss)."
    ),
    surrogate: str = typer.Option(
        "xgb", help="Surrogate kind under <data root>/surrogates/<benchmark>/ (xgb, gp) or an artifact directory."
    ),
    plugin: Optional[list[str]] = typer.Option(
        None, help="Module or .py file to import first (registers user optimizers); repeatable."
    ),
) -> None:
    """Run optimizers x seeds x budgets on a benchmark with a simulated clock; write curves and a leaderboard."""
    from pathlib import Path

    from qra_bench.harness.runner import load_plugin, run_benchmark
    from qra_bench.harness.spec import BenchSpec, parse_duration
    from qra_bench.scenarios import default_budget

    for p in plugin or []:
        load_plugin(p)
    spec = BenchSpec(
        benchmark=benchmark,
        backend=backend,
        optimizers=tuple(o.strip() for o in optimizers.split(",") if o.strip()),
        seeds=int_list(seeds, "seeds"),
        budgets=tuple(b.strip() for b in (budgets or default_budget(benchmark)).split(",") if b.strip()),
        max_cost_s=parse_duration(max_cost),
        max_evals=max_evals,
        fidelity=fidelity,
        metric=metric,
        surrogate=surrogate,
    )
    report = run_benchmark(spec, out, progress=lambda line: typer.echo(f"  {line}", err=True))
    typer.echo((Path(out) / "leaderboard.md").read_text())
    typer.echo(f"wrote {len(report.files)} files to {out}")


def run(
    scenario: Optional[str] = typer.Option(None, help="Scenario (see `qra-bench scenarios`); default: the headline."),
    table: Optional[str] = typer.Option(
        None, help="A results table instead of the scenario's (searched at uniform-4bit unless --budget)."
    ),
    surrogate: Optional[str] = typer.Option(
        None, help="A surrogate instead of the scenario's (fitted on the fly into the run's folder when missing)."
    ),
    budget: Optional[str] = typer.Option(
        None, help="Named or absolute budget instead of the scenario's: uniform-4bit, 0.9xfp16-lora, 72MiB."
    ),
    pick_seeds: int = typer.Option(3, help="Seeds AutoQRA's pick is measured at (real trials for missing ones)."),
    real_evals: int = typer.Option(3, help="Real fine-tunes AutoQRA spends (0: surrogate only)."),
    seed: int = typer.Option(0, help="Seed of the search and of the real trials."),
    out: Optional[str] = typer.Option(None, help="The run's folder (default runs/<UTC timestamp>)."),
    append_to_table: bool = typer.Option(
        False,
        help="Append real rows to the shipped table (default: to a copy in "
        "the run's folder, so the shipped table's hash stays).",
    ),
    live_baselines: bool = typer.Option(
        False, help="Run the uniform 4-bit / 16-bit rank-16 baselines live when the table lacks them."
    ),
    threads: Optional[int] = typer.Option(
        None, help="torch CPU threads of the real trials (default: the free cores, affinity minus load)."
    ),
    steps: Optional[int] = typer.Option(None, help="Training steps of the real trials (default: the table's recipe)."),
    budgets: int = typer.Option(12, help="Budgets in the sweep over the table's memory range."),
    min_trials: int = typer.Option(10, help="Fewest full-fidelity trials the table must hold."),
    generations: Optional[int] = typer.Option(None, help="AutoQRA Stage-1 generations (default 12; sweep 6)."),
    evals: Optional[int] = typer.Option(
        None, help="AutoQRA Stage-2 surrogate evaluations without real trials (default 30; sweep 10)."
    ),
) -> None:
    """The main job on a scenario (default: the headline): verify table and surrogate, sweep, AutoQRA with real
    trials, Table 1 against the best fitting uniform configuration."""
    from qra_bench.main_job import MainJobSpec, run_main_job

    spec = MainJobSpec(
        scenario=scenario,
        pick_seeds=pick_seeds,
        table=table,
        surrogate=surrogate,
        budget=budget,
        real_evals=real_evals,
        seed=seed,
        out=out,
        append_to_table=append_to_table,
        live_baselines=live_baselines,
        threads=threads,
        steps=steps,
        n_budgets=budgets,
        min_trials=min_trials,
        generations=generations,
        evals=evals,
    )
    run_main_job(spec, echo=typer.echo)


def scenarios(
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print a JSON list (name, model, task, metric, budget, "
        "budget_bytes, table, table_hash, surrogates, card, headline, ...).",
    ),
    card: Optional[str] = typer.Option(None, help="Print this scenario's difficulty card."),
    write: bool = typer.Option(
        False, help="With --card: recompute the card from the table and surrogates and write it."
    ),
    all_: bool = typer.Option(False, "--all", help="Also list incomplete scenarios, with what they lack."),
) -> None:
    """The shipped benchmark scenarios (complete ones only), or one scenario's difficulty card."""
    import json

    from qra_bench.scenarios import get_scenario, list_scenarios, scenario_record, write_card

    if card is not None:
        s = get_scenario(card, complete=not write)
        if write:
            typer.echo(f"wrote {write_card(s)}", err=True)
        typer.echo(s.card_path().read_text())
        return
    found = list_scenarios(complete_only=not all_)
    records = [scenario_record(s) for s in found]
    if as_json:
        typer.echo(json.dumps(records, indent=1))
        return
    rows = [
        (
            r["name"],
            r["model"],
            r["task"],
            r["metric"],
            r["budget"],
            f"{r['budget_bytes'] / 2**20:.2f}" if r["budget_bytes"] else "-",
            str(r["full_fidelity_trials"] or 0),
            "yes" if r["headline"] else "",
            (r["table_hash"] or "-")[:16],
        )
        for r in records
    ]
    header = ("name", "model", "task", "metric", "budget", "MiB", "trials", "headline", "table hash")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo(
            "  ".join(c.rjust(w) if i in (5, 6) else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
        )
    if all_:
        for s in found:
            for problem in s.problems():
                typer.echo(f"  {s.name}: {problem}")
