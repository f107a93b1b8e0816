"""Per-block LoRA through peft: one rank (and alpha) per decoder block via ``rank_pattern``.

All seven linears of block ``l`` get rank ``ranks[l]``; rank 0 means that block gets no adapter at all
(peft has no rank 0, so those modules are simply not targeted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from torch import nn

from qra_bench.quant.base import BLOCK_LINEARS, decoder_blocks


@dataclass(frozen=True)
class LoraSettings:
    """LoRA hyper-parameters shared by every block.

    alpha_per_rank : lora_alpha = alpha_per_rank * rank (the paper's alpha = 2r).
    use_rslora : scale the update by alpha / sqrt(r) instead of alpha / r. With alpha = 2r that is
        2 sqrt(r): a larger rank adds capacity *and* a larger effective step (rank 16 moves the output
        twice as far per step as rank 4). Measured consequence on ``news``: at 4-16 bits rank 16 is
        0.012 nats worse than rank 8. Kept because the shipped tables were collected with it.
    """

    alpha_per_rank: float = 2.0
    dropout: float = 0.05
    use_rslora: bool = True


def block_prefix(block_index: int) -> str:
    """Module-name prefix of decoder block ``block_index`` inside a causal LM."""
    return f"model.layers.{block_index}."


def lora_config(ranks: Sequence[int], settings: LoraSettings = LoraSettings()):
    """A peft ``LoraConfig`` with per-block ``rank_pattern`` and ``alpha_pattern``."""
    from peft import LoraConfig

    targets = [
        f"{block_prefix(l)}{'self_attn' if n in BLOCK_LINEARS[:4] else 'mlp'}.{n}"
        for l, r in enumerate(ranks)
        if r > 0
        for n in BLOCK_LINEARS
    ]
    active = [r for r in ranks if r > 0]
    default_r = active[0] if active else 1
    # Keys are full module names, so a pattern can never match a block whose index merely shares a prefix
    # (peft matches rank_pattern keys as suffix regexes; "layers.1." would also match "layers.11.").
    rank_pattern = {f"^{t}$": r for t in targets for r in [ranks[int(t.split(".")[2])]]}
    alpha_pattern = {k: settings.alpha_per_rank * r for k, r in rank_pattern.items()}
    return LoraConfig(
        r=default_r,
        lora_alpha=settings.alpha_per_rank * default_r,  # type: ignore[arg-type]  # peft annotates int; a float alpha works
        lora_dropout=settings.dropout,
        target_modules=targets,
        rank_pattern=rank_pattern,
        alpha_pattern=alpha_pattern,
        use_rslora=settings.use_rslora,
        bias="none",
        task_type="CAUSAL_LM",
    )


def attach_lora(model: nn.Module, ranks: Sequence[int], settings: LoraSettings = LoraSettings()) -> nn.Module:
    """Wrap ``model`` with peft LoRA at the given per-block ranks; only adapter weights are trainable."""
    from peft import get_peft_model

    n_blocks = len(decoder_blocks(model))
    if len(ranks) != n_blocks:
        raise ValueError(f"{len(ranks)} ranks for {n_blocks} blocks")
    if not any(r > 0 for r in ranks):
        for p in model.parameters():
            p.requires_grad_(False)
        return model
    return get_peft_model(model, lora_config(ranks, settings))


def adapter_ranks(model: nn.Module) -> list[int]:
    """The LoRA rank actually attached to each block (0 where none), read back from the modules."""
    out = []
    for block in decoder_blocks(model):
        ranks = {
            m.r["default"] for m in block.modules() if hasattr(m, "r") and isinstance(m.r, dict) and "default" in m.r
        }
        out.append(max(ranks) if ranks else 0)
    return out
