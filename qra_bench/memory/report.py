"""The ``qra-bench memory`` report: the itemized bytes of a configuration or of a named budget, as text."""

from __future__ import annotations

from typing import Sequence

from qra_bench.arch import list_presets, load_arch
from qra_bench.memory.budgets import parse_budget
from qra_bench.memory.layouts import method_formula_bytes
from qra_bench.memory.model import MemoryModel, MemorySettings, human_bytes
from qra_bench.space import SearchSpace

__all__ = ["memory_report"]


def _describe(values: Sequence[int]) -> str:
    if len(set(values)) == 1:
        return f"{values[0]} on all {len(values)} blocks"
    return ",".join(map(str, values))


def _presets_table() -> str:
    lines = [f"{'preset':<16}{'type':<8}{'blocks':>7}{'hidden':>8}{'parameters':>16}"]
    for name in list_presets():
        a = load_arch(name)
        lines.append(f"{name:<16}{a.model_type:<8}{a.n_blocks:>7}{a.hidden_size:>8}{a.total_params():>16,}")
    return "\n".join(lines)


def memory_report(
    arch: str = "tiny",
    bits: str | None = None,
    ranks: str | None = None,
    budget: str | None = None,
    backend: str = "hqq",
    group_size: int = 128,
    batch_size: int = 1,
    seq_len: int = 512,
    grad_checkpointing: bool = False,
    list_presets: bool = False,
) -> str:
    """The ``qra-bench memory`` report: the itemized bytes of a configuration or of a named budget.

    With ``bits``/``ranks`` (one value for all blocks or one per block; defaults 4 bits, rank 16) it itemizes
    that configuration, and, if ``budget`` is also given, says whether it fits. With only a named budget it
    itemizes the uniform configuration that defines the budget; with only an absolute budget, the largest
    configuration repaired to fit it.
    """
    if list_presets:
        return _presets_table()
    spec = load_arch(arch)
    settings = MemorySettings(
        backend=backend,
        group_size=group_size,
        batch_size=batch_size,
        seq_len=seq_len,
        grad_checkpointing=grad_checkpointing,
    )
    model = MemoryModel(spec, settings)
    space = model.space
    L = spec.n_blocks

    header = [
        f"architecture   {spec.name} ({spec.model_type}, {L} blocks, {spec.total_params():,} parameters)",
        f"settings       backend {backend}, group {group_size}, weights/metadata/LoRA {settings.weight_dtype_bytes}/"
        f"{settings.meta_dtype_bytes}/{settings.lora_dtype_bytes} B, grads {settings.grad_dtype_bytes} B, "
        f"{settings.optimizer} {settings.optimizer_state_bytes} B states, batch {batch_size} x {seq_len} tokens, "
        f"grad checkpointing {'on' if grad_checkpointing else 'off'}",
        f"ladders        bits {{{', '.join(map(str, space.bits))}}}, ranks {{{', '.join(map(str, space.ranks))}}}",
    ]
    parsed_budget = parse_budget(budget, model) if budget is not None else None
    note: list[str] = []
    if bits is not None or ranks is not None or parsed_budget is None:
        rank_default = 16 if 16 in space.ranks else space.ranks[-1]
        b = SearchSpace.parse_ladder_values(bits, L, "bits") if bits is not None else (4,) * L
        r = SearchSpace.parse_ladder_values(ranks, L, "ranks") if ranks is not None else (rank_default,) * L
        cfg = space.config(b, r)
        if parsed_budget is not None:
            total = model.total_bytes(cfg)
            verdict = "fits" if total <= parsed_budget.bytes else "does NOT fit"
            note.append(
                f"budget         {parsed_budget.name} = {parsed_budget.bytes:,} bytes ({human_bytes(parsed_budget.bytes)}): "
                f"configuration {verdict} (margin {parsed_budget.bytes - total:+,} bytes)"
            )
    elif parsed_budget.reference is not None:
        cfg = parsed_budget.reference
        frac = f"{parsed_budget.fraction:g} x the total of " if parsed_budget.fraction != 1.0 else "the total of "
        header.append(
            f"budget         {parsed_budget.name} = {parsed_budget.bytes:,} bytes ({human_bytes(parsed_budget.bytes)}): "
            f"{frac}the configuration below"
        )
    else:
        header.append(
            f"budget         {parsed_budget.name} = {parsed_budget.bytes:,} bytes ({human_bytes(parsed_budget.bytes)})"
        )
        min_total = model.total_bytes(model.min_config())
        if min_total > parsed_budget.bytes:
            return "\n".join(
                header
                + [f"infeasible     the smallest configuration needs {min_total:,} bytes ({human_bytes(min_total)})"]
            )
        cfg = model.repair(model.max_config(), parsed_budget)
        header.append("               below: the largest configuration repaired to fit (no importance priors)")

    bd = model.breakdown(cfg)
    header.append(
        f"configuration  bits {_describe(cfg.bits)} (avg {cfg.avg_bits:.2f}); "
        f"ranks {_describe(cfg.ranks)} (avg {cfg.avg_rank:.2f})"
    )
    formula = method_formula_bytes(spec, cfg, group_size)
    diff = (bd.weights_and_adapters - formula) / formula * 100
    footer = [
        f"{'reference M(C) formula':<27}{formula:>18,}  {human_bytes(formula):>12}  (reference M(C), weights and adapters; "
        f"{diff:+.1f}% vs weights_and_adapters)"
    ]
    footer.append("activations is an estimate (qra_bench.memory.activation_bytes); trials record measured peak memory.")
    return "\n".join(header + [""] + [bd.format_table()] + footer + note)
