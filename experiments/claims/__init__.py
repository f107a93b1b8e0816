"""The paper's claims, regenerated on a scenario's results table (and its surrogate where a claim needs one).

Each claim writes ``<out>/claim_<name>.md`` (our numbers beside the paper's, a one-line verdict, the scenario,
the table's path and content hash, the surrogate's path and manifest hash, the regenerating command) with a
``.json`` of the same numbers and, where it helps, a PNG. Verdicts are ``supported``, ``not supported`` or
``not testable yet: <why>``; a table too small for a claim gets the last one, never a crash.

A scenario (:mod:`qra_bench.scenarios`; default: the headline) names the table, the budget (evaluated with the
table's memory model), the metric and the surrogate; ``--table`` and ``--surrogate`` override them. One module
per claim (the paper's numbers are quoted as the paper reports them, from secondary sources;
``docs/algorithm.md`` describes the method):

- ``table1``: AutoQRA's pick against 16-bit LoRA, uniform 4-bit (QLoRA-style) and the best fitting uniform
  configuration (:mod:`qra_bench.table1`); supported only where the pick fits the budget, beats the best
  fitting uniform configuration by more than 2 SE and is not worse than 16-bit LoRA by more than 2 SE.
- ``spread``: spread of the configurations within one budget against the seed noise.
- ``proxy``: correlation of static proxies (before fine-tuning) with the fine-tuned eval_loss.
- ``compensation``: does a higher rank recover quality at low bits (bits x rank grid, interaction fit).
- ``screening``: out-of-fold surrogate screening hit rate of the true top 10 % (needs a surrogate).
- ``evals_to_target``: evaluations to come within a tolerance of the best known, AutoQRA (screened by
  :func:`qra_bench.surrogate.screen.low_fidelity_screen`) vs random vs SMAC3 (surrogate backend).
- ``ablations``: bits-only and rank-only AutoQRA vs full AutoQRA (surrogate-predicted).

Main metric: ``eval_loss`` (nats per token, lower is better) on full-fidelity rows (``fidelity_frac == 1``);
``accuracy`` beside it. Surrogate claims use the surrogate's target. Seed noise is the pooled std over the
configurations with >= 2 seeds. Each module's docstring states its verdict rule, fixed in the code.

    .venv/bin/python experiments/claims.py --claim all --scenario tiny-news
"""

from __future__ import annotations

from .cli import CLAIMS, MODULES, context, main, parser, run_claim
from .context import DEFAULT_SCENARIO, RESULTS, Context, Options
from .report import VERDICTS, Claim, NotTestable

__all__ = [
    "CLAIMS",
    "DEFAULT_SCENARIO",
    "MODULES",
    "RESULTS",
    "VERDICTS",
    "Claim",
    "Context",
    "NotTestable",
    "Options",
    "context",
    "main",
    "parser",
    "run_claim",
]
