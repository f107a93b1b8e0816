"""LM-task probe: LoRA LM fine-tuning on finetune-split BBC text, eval next-token acc/loss on eval split."""

import sys
import os
import time
import math
import json
import numpy as np
import torch

torch.set_num_threads(int(os.environ.get("TH", "1")))
from qra_bench.models import load_base
from qra_bench.corpora import bbc_splits
from qra_bench.quant import QuantSettings, quantize_blocks
from qra_bench.lora import attach_lora, LoraSettings
from qra_bench.trial import compute_device

v = json.loads(sys.argv[1])
L = v.get("L", 48)
steps = v.get("steps", 100)
bs = v.get("bs", 8)
lr = v.get("lr", 1e-3)
base = load_base(os.environ.get("BASE", "tiny"))
tok = base.tokenizer
sp = bbc_splits()


def windows(arts, n, rng):
    seqs = [tok(a.text, add_special_tokens=False)["input_ids"] for a in arts]
    seqs = [s for s in seqs if len(s) > L + 1]
    out = []
    for i in range(n):
        s = seqs[rng.integers(len(seqs))]
        st = rng.integers(0, len(s) - L - 1)
        out.append(s[st : st + L + 1])
    return np.array(out, dtype=np.int64)


ev = windows(sp["eval"], 300, np.random.default_rng(123))
dev, dt = compute_device()


@torch.no_grad()
def evaluate(m):
    m.eval()
    tot = 0
    cor = 0
    n = 0
    for i in range(0, len(ev), 50):
        ids = torch.from_numpy(ev[i : i + 50])
        lg = m(input_ids=ids[:, :-1]).logits.float()
        tgt = ids[:, 1:]
        tot += float(torch.nn.functional.cross_entropy(lg.reshape(-1, lg.shape[-1]), tgt.reshape(-1), reduction="sum"))
        cor += int((lg.argmax(-1) == tgt).sum())
        n += tgt.numel()
    m.train()
    return cor / n, tot / n


for item in sys.argv[2].split(";"):
    b, r, seed = map(int, item.split(","))
    t = time.time()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tr = windows(sp["finetune"], steps * bs, rng)
    m = base.fresh_copy(dev, dt)
    quantize_blocks(m, [b] * 8, QuantSettings(**v.get("quant", {})))
    pa, pl = evaluate(m)
    m = attach_lora(m, [r] * 8, LoraSettings())
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    m.train()
    curve = []
    for step in range(steps):
        lrs = lr * (step + 1) / 10 if step < 10 else lr * 0.5 * (1 + math.cos(math.pi * (step - 10) / (steps - 10)))
        for g in opt.param_groups:
            g["lr"] = lrs
        ids = torch.from_numpy(tr[step * bs : (step + 1) * bs])
        loss = m(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step + 1 == steps // 2:
            curve.append(evaluate(m))
    a, l = evaluate(m)
    print(
        f"b{b} r{r} s{seed}: acc {a:.4f} loss {l:.4f} | half {curve[0][0]:.4f}/{curve[0][1]:.4f} | pre {pa:.4f}/{pl:.4f} | {time.time() - t:.0f}s",
        flush=True,
    )
