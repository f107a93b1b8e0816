"""Is the zero-step 16 -> 8-bit inversion a property of the model or of the 32 held-out windows?

The landscape criteria ask the held-out LM loss to rise monotonically as bits fall, block by block. On the task's 32
held-out windows (``task.lm_ids``, 4,096 tokens) two blocks lose about 1e-4 nats when quantized from 16 to
8 bits. This scores the same per-block ladder (each block alone at 16/8/4/3/2 bits, the others at 16) on
every 128-token chunk of the BBC ``eval`` split (never trained on, never pretrained on), reported separately
for the first 32 chunks (which equal ``lm_ids``: a reproduction check) and for the next ``--chunks`` - 32 chunks
(disjoint from them; 1,024 by default, 32x the text), each step as a paired mean difference with its standard error.

    python experiments/probes/monotone_eval_size.py [--threads 1] [--chunks 1056] [--ladder 16,8,4,3,2] [--quant JSON]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from landscape import lm_window_losses, paired_step  # noqa: E402

from qra_bench.corpora import bbc_splits  # noqa: E402
from qra_bench.models import load_base  # noqa: E402
from qra_bench.quant import quantize_blocks  # noqa: E402
from qra_bench.tasks.bbc import LM_CHUNK_TOKENS, LM_CHUNKS, held_out_lm_ids  # noqa: E402
from qra_bench.trial import TrialSettings, compute_device  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--chunks", type=int, default=1056, help="held-out chunks scored (0: all of the eval split)")
    p.add_argument("--ladder", default="16,8,4,3,2", help="bit widths, highest first")
    p.add_argument("--quant", default="{}", help="QuantSettings overrides as JSON (default: the recipe's)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    base = load_base("tiny")
    chunks = held_out_lm_ids(base.tokenizer, bbc_splits()["eval"], a.chunks or 10**9)
    quant = replace(TrialSettings().quant, **json.loads(a.quant))
    ladder = [int(b) for b in a.ladder.split(",")]
    if ladder[0] != 16:
        p.error("--ladder starts at 16 (every block's reference: the other blocks stay unquantized)")
    device, dtype = compute_device()
    n = base.model.config.num_hidden_layers
    t0 = time.time()

    def losses(bits) -> np.ndarray:
        model = base.fresh_copy(device, dtype)
        quantize_blocks(model, bits, quant)
        return lm_window_losses(model, chunks, device)

    full = losses([16] * n)
    print(
        f"model tiny sha256 {base.sha256[:16]}...; quantizer {quant}; {len(chunks)} chunks of "
        f"{LM_CHUNK_TOKENS} tokens ({len(chunks) * LM_CHUNK_TOKENS:,} tokens): first {LM_CHUNKS} = lm_ids, "
        f"{len(chunks) - LM_CHUNKS} others",
        flush=True,
    )
    print("| block | step | lm_ids (32): diff, nats (SE) | other chunks: diff, nats (SE) | all chunks: diff (z) |")
    print("|---|---|---|---|---|")
    inversions = {"lm_ids": 0, "other": 0, "all": 0}
    for block in range(n):
        win = {16: full}
        for b in ladder[1:]:
            win[b] = losses([b if i == block else 16 for i in range(n)])
        for hi, lo in zip(ladder, ladder[1:]):
            parts = {"lm_ids": slice(0, LM_CHUNKS), "other": slice(LM_CHUNKS, None), "all": slice(None)}
            s = {k: paired_step(win[hi][sl], win[lo][sl]) for k, sl in parts.items()}
            for k in inversions:
                inversions[k] += s[k]["diff"] < 0
            print(
                f"| {block} | {hi}->{lo} | {s['lm_ids']['diff']:+.5f} ({s['lm_ids']['se']:.5f}) | "
                f"{s['other']['diff']:+.5f} ({s['other']['se']:.5f}) | {s['all']['diff']:+.5f} "
                f"({s['all']['diff'] / s['all']['se']:+.1f}) |",
                flush=True,
            )
    print(
        f"steps down the ladder that lower the loss (of {(len(ladder) - 1) * n}): {inversions}; {time.time() - t0:.0f} s"
    )


if __name__ == "__main__":
    main()
