import time
import torch

torch.set_num_threads(2)
from qra_bench.models import load_base
import qra_bench.tasks.bbc as B

B.single_token = lambda tok, w: tok(w, add_special_tokens=False)["input_ids"][0]
from qra_bench.tasks.bbc import build_bbc
from qra_bench.trial import evaluate, compute_device
from qra_bench.quant.base import decoder_blocks
from torchao.quantization import IntxWeightOnlyConfig, MappingType, PerGroup, PerAxis, quantize_

base = load_base("tiny")
old = build_bbc(base.tokenizer, {t: " " + t for t in ["business", "entertainment", "politics", "sports", "tech"]})
new = build_bbc(base.tokenizer)
dev, dt = compute_device()


def quant(model, bits, mapping, gran):
    for blk in decoder_blocks(model):
        for name, mod in list(blk.named_modules()):
            pass
        quantize_(
            blk, IntxWeightOnlyConfig(weight_dtype=getattr(torch, f"int{bits}"), granularity=gran, mapping_type=mapping)
        )


variants = {
    "sym_g128": (MappingType.SYMMETRIC, PerGroup(128)),
    "symnoclip_g128": (MappingType.SYMMETRIC_NO_CLIPPING_ERR, PerGroup(128)),
    "sym_g64": (MappingType.SYMMETRIC, PerGroup(64)),
    "sym_chan": (MappingType.SYMMETRIC, PerAxis(0)),
    "asym_g128": (MappingType.ASYMMETRIC, PerGroup(128)),
}
m = base.fresh_copy(dev, dt)
e = evaluate(m, old, 200, dev)
e2 = evaluate(m, new, 200, dev)
print(
    "16bit",
    round(e.lm_loss, 3),
    "acc_old",
    e.accuracy,
    "acc_new",
    e2.accuracy,
    "eval_loss_old",
    round(e.eval_loss, 3),
    flush=True,
)
for name, (mp, gr) in variants.items():
    for bits in (4, 3, 2):
        t = time.time()
        m = base.fresh_copy(dev, dt)
        try:
            quant(m, bits, mp, gr)
        except Exception as ex:
            print(name, bits, "ERR", ex)
            continue
        e = evaluate(m, old, 200, dev)
        print(
            name,
            bits,
            "lm",
            round(e.lm_loss, 3),
            "acc_old",
            round(e.accuracy, 3),
            "eval_loss_old",
            round(e.eval_loss, 3),
            f"{time.time() - t:.1f}s",
            flush=True,
        )
