"""How evenly is 2-bit damage spread over the blocks, per quantizer setting? (for the landscape's linear criterion)

Zero-step held-out LM loss of `tiny` on `news` for uniform 16/4/3/2 bits and for each block alone at 2 bits,
under several quantizer settings. A linear fit on *average* bits can only explain the landscape if no single
block dominates the damage; the default setting puts about 5x the median block's cost on block 0.

    .venv/bin/python experiments/probes/block_evenness.py [variant ...]
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch

from qra_bench.models import load_base
from qra_bench.quant import QuantSettings, quantize_blocks
from qra_bench.tasks import load_task
from qra_bench.trial import TrialSettings, compute_device, evaluate

VARIANTS = {
    "torchao-symnoclip-g128": QuantSettings(backend="torchao", mapping="symmetric_no_clipping_err", group_size=128),
    "torchao-symnoclip-g32": QuantSettings(backend="torchao", mapping="symmetric_no_clipping_err", group_size=32),
    "torchao-sym-g128": QuantSettings(backend="torchao", mapping="symmetric", group_size=128),
    "torchao-asym-g128": QuantSettings(backend="torchao", mapping="asymmetric", group_size=128),
    "hqq-g64": QuantSettings(backend="hqq", group_size=64),
    "hqq-g128": QuantSettings(backend="hqq", group_size=128),
}


def main(names: list[str]) -> None:
    torch.set_num_threads(1)
    base = load_base("tiny")
    task = load_task("news", base.tokenizer)
    device, dtype = compute_device()
    n = base.model.config.num_hidden_layers
    batch = TrialSettings().eval_batch_size

    def lm_loss(bits, quant):
        model = base.fresh_copy(device, dtype)
        quantize_blocks(model, bits, quant)
        return evaluate(model, task, batch, device).lm_loss

    ref = lm_loss([16] * n, VARIANTS["torchao-symnoclip-g128"])
    for name in names:
        t0 = time.perf_counter()
        q = VARIANTS[name]
        uniform = {b: lm_loss([b] * n, q) - ref for b in (4, 3, 2)}
        block = [lm_loss([2 if i == l else 16 for i in range(n)], q) - ref for l in range(n)]
        others = float(np.median(block[1:]))
        print(
            json.dumps(
                {
                    "variant": name,
                    "uniform_damage": {b: round(v, 4) for b, v in uniform.items()},
                    "block_2bit_damage": [round(v, 4) for v in block],
                    "block0_over_median_other": round(block[0] / others, 1) if others > 0 else None,
                    "sum_of_blocks_over_uniform": round(sum(block) / uniform[2], 2),
                    "seconds": round(time.perf_counter() - t0, 1),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:] or list(VARIANTS))
