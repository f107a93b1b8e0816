"""``qra-bench search`` and ``sweep``: the best configuration under one budget, or at many, from a surrogate."""

from __future__ import annotations

from typing import Optional

import typer

from qra_bench.cli.options import MEMORY_HELP, scenario_paths

__all__ = ["search", "sweep"]


def search(
    scenario: Optional[str] = typer.Option(
        None, help="Scenario (see `qra-bench scenarios`): its table, xgb surrogate and budget, each overridable below."
    ),
    table: Optional[str] = typer.Option(
        None, help="Results table the surrogate was fitted on (real trials are appended to it)."
    ),
    surrogate: Optional[str] = typer.Option(None, help="Surrogate artifact directory (from `qra-bench fit`)."),
    budget: Optional[str] = typer.Option(
        None,
        help="Named or absolute budget: uniform-4bit, 0.5xfp16-lora, 60MiB "
        "(default: the scenario's, else uniform-4bit).",
    ),
    method: str = typer.Option("autoqra", help="autoqra, or any registered optimizer (random, evolution, bo, ...)."),
    real_evals: int = typer.Option(0, help="Real trials to spend on the table's model and task (0: surrogate only)."),
    seed: int = typer.Option(0, help="Seed of the search (and of the real trials)."),
    out: Optional[str] = typer.Option(
        None, help="Write config.json, lora_config.json, quant_config.json, search.json here."
    ),
    arch: Optional[str] = typer.Option(None, help="Architecture preset or config JSON (default: the surrogate's)."),
    backend: Optional[str] = typer.Option(
        None, help="Quantization layout of the memory model and quant config (default: the table's)."
    ),
    evals: Optional[int] = typer.Option(
        None,
        help="autoqra: Stage-2 surrogate evaluations (default 30); other "
        "methods: surrogate-answered asks (default 100).",
    ),
    generations: Optional[int] = typer.Option(None, help="autoqra: Stage-1 generations (default 12)."),
    steps: Optional[int] = typer.Option(
        None,
        help="Training steps of the real trials (default: the table's recipe; "
        "other steps record rows of another recipe, for smoke runs).",
    ),
    allow_hash_mismatch: bool = typer.Option(False, help="Use the surrogate even if the table changed since its fit."),
    memory: str = typer.Option("table", help=MEMORY_HELP),
) -> None:
    """Find the best configuration under a budget with a fitted surrogate; export it for peft and quantization."""
    import json
    import time
    from pathlib import Path

    from qra_bench.search.surrogate_search import format_outcome, load_problem, run_search, search_record

    t0 = time.perf_counter()
    table, surrogate, budget = scenario_paths(scenario, table, surrogate, budget)
    problem = load_problem(
        table, surrogate, arch=arch, backend=backend, allow_hash_mismatch=allow_hash_mismatch, memory=memory
    )
    outcome, trials = run_search(
        problem, budget, method, seed, real_evals, generations=generations, evals=evals, steps=steps
    )
    typer.echo(format_outcome(problem, outcome, trials))
    if out:
        from qra_bench.export import write_exports

        paths = write_exports(out, outcome.config, problem.lora_settings(), problem.quant_settings())
        record = Path(out) / "search.json"
        record.write_text(json.dumps(search_record(problem, outcome), indent=1) + "\n")
        typer.echo(f"wrote {', '.join(str(p) for p in paths + [record])}")
    typer.echo(f"wall {time.perf_counter() - t0:.1f} s")


def sweep(
    scenario: Optional[str] = typer.Option(
        None, help="Scenario (see `qra-bench scenarios`): its table and xgb surrogate, each overridable below."
    ),
    surrogate: Optional[str] = typer.Option(None, help="Surrogate artifact directory (from `qra-bench fit`)."),
    table: Optional[str] = typer.Option(
        None, help="Results table the surrogate was fitted on (its support and measured points)."
    ),
    budgets: str = typer.Option(
        "0.3xfp16-lora:1.0xfp16-lora:30",
        help="LO:HI:N (N evenly spaced budgets) or a comma list: 0.3xfp16-lora,uniform-4bit,60MiB.",
    ),
    method: str = typer.Option("autoqra", help="autoqra, or any registered optimizer."),
    seed: int = typer.Option(0, help="Seed of every budget's search."),
    out: Optional[str] = typer.Option(None, help="Write sweep.csv, sweep.json and sweep.png here."),
    arch: Optional[str] = typer.Option(None, help="Architecture preset or config JSON (default: the surrogate's)."),
    backend: Optional[str] = typer.Option(None, help="Quantization layout of the memory model (default: the table's)."),
    evals: Optional[int] = typer.Option(
        None,
        help="autoqra: Stage-2 surrogate evaluations per budget (default 10); "
        "other methods: asks per budget (default 100).",
    ),
    allow_hash_mismatch: bool = typer.Option(False, help="Use the surrogate even if the table changed since its fit."),
    memory: str = typer.Option("table", help=MEMORY_HELP),
) -> None:
    """Best predicted configuration at each of many budgets (surrogate only), flagged where it extrapolates."""
    import time

    from qra_bench.search.surrogate_search import load_problem
    from qra_bench.sweep import format_sweep, parse_budgets, run_sweep, write_sweep

    t0 = time.perf_counter()
    table, surrogate, _ = scenario_paths(scenario, table, surrogate, None)
    problem = load_problem(
        table, surrogate, arch=arch, backend=backend, allow_hash_mismatch=allow_hash_mismatch, memory=memory
    )
    result = run_sweep(problem, parse_budgets(budgets, problem.memory_model), method, seed, evals=evals)
    typer.echo(format_sweep(result))
    if out:
        typer.echo(f"wrote {', '.join(str(p) for p in write_sweep(result, out))}")
    typer.echo(
        f"{len(result.points)} budgets in {time.perf_counter() - t0:.1f} s wall ({result.wall_s:.1f} s searching)"
    )
