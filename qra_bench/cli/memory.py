"""``qra-bench memory``: the itemized memory of a configuration or of a named budget."""

from __future__ import annotations

from typing import Optional

import typer


__all__ = ["memory"]


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
