"""Measure the Stage-0 importance priors (docs/algorithm.md) of the embedded default and write them beside its surrogate.

I_q from 2L zero-step quantized evaluations, I_r from L + 1 short fine-tunes (a quarter of the recipe's
steps). The JSON is what ``qra-bench fit --importance`` and the search's warm start read.

    python experiments/importance_priors.py --task news   # -> surrogates/tiny-news/importance.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from qra_bench.defaults import DEFAULT_TASK


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--task", default=DEFAULT_TASK)
    p.add_argument("--out", default=None, help="default: surrogates/tiny-<task>/importance.json")
    a = p.parse_args()
    a.out = a.out or f"surrogates/{a.model}-{a.task}/importance.json"
    from qra_bench.collect import DEFAULT_BITS, DEFAULT_RANKS
    from qra_bench.importance import importance_priors
    from qra_bench.models import load_base
    from qra_bench.space import SearchSpace
    from qra_bench.tasks import load_task
    from qra_bench.trial import TrialSettings

    t0 = time.perf_counter()
    base = load_base(a.model)
    task = load_task(a.task, base.tokenizer)
    space = SearchSpace(base.model.config.num_hidden_layers, bits=DEFAULT_BITS, ranks=DEFAULT_RANKS)
    priors = importance_priors(base, task, space, TrialSettings())
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(priors.to_json())
    print(
        f"I_q {[round(x, 3) for x in priors.importance_q]}\nI_r {[round(x, 3) for x in priors.importance_r]}\n"
        f"raw_q (nats) {[round(x, 4) for x in priors.raw_q]}\nraw_r (nats) {[round(x, 4) for x in priors.raw_r]}\n"
        f"wrote {a.out} in {time.perf_counter() - t0:.0f} s"
    )


if __name__ == "__main__":
    main()
