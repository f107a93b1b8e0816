"""``qra-bench reproduce table1``: the paper's Table 1 on a real LLM."""

from __future__ import annotations

from typing import Optional

import typer

from qra_bench.cli.options import EVAL_METRIC_HELP, GRAD_CHECKPOINTING_HELP, int_list

__all__ = ["reproduce_table1"]


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
    eval_metric: str = typer.Option("acc", help=EVAL_METRIC_HELP),
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
    grad_checkpointing: bool = typer.Option(False, help=GRAD_CHECKPOINTING_HELP),
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
