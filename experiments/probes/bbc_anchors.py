"""Fine-tune probe: anchors under a quant/task variant. usage: ft.py VARIANT_JSON CONFIGS"""

import sys
import json
import time
import torch
from dataclasses import replace

torch.set_num_threads(int(__import__("os").environ.get("TH", "2")))
from qra_bench.models import load_base
from qra_bench.trial import run_trial, TrialSettings
from qra_bench.quant import QuantSettings
from qra_bench.space import QRConfig

v = json.loads(sys.argv[1])
import os

base = load_base(os.environ.get("BASE", "tiny"))
from qra_bench.tasks.bbc import build_bbc

task = build_bbc(base.tokenizer, prompt_tokens=int(v.get("prompt", 32)))
s = TrialSettings(fidelities=(0.5, 1.0))
s = replace(s, quant=replace(QuantSettings(), **v.get("quant", {})), **v.get("trial", {}))
for item in sys.argv[2].split(";"):
    b, r, seed = map(int, item.split(","))
    t = time.time()
    res = run_trial(base, task, QRConfig(bits=(b,) * 8, ranks=(r,) * 8), seed=seed, settings=s)
    row = res.rows[-1]
    r0 = res.rows[0]
    print(
        f"b{b} r{r} s{seed}: acc {row.accuracy:.3f} loss {row.eval_loss:.3f} | half {r0.accuracy:.3f}/{r0.eval_loss:.3f} | pre acc {row.proxy_accuracy:.3f} lm {row.lm_loss:.3f} pre_lm {row.proxy_lm_loss:.3f} | {time.time() - t:.0f}s",
        flush=True,
    )
