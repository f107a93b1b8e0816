"""Running the claims: the registry of claim modules, one claim's files, and the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Optional

from . import ablations, compensation, evals_to_target, proxy, screening, spread, table1
from .context import DEFAULT_SCENARIO, RESULTS, Context, Options, scenario_of_table
from .report import Claim, NotTestable, json_safe, table

#: Every claim, in the order ``--claim all`` runs them; each module has NAME, TITLE, PAPER, USES_SURROGATE, run.
MODULES: tuple[ModuleType, ...] = (table1, spread, proxy, compensation, screening, evals_to_target, ablations)
CLAIMS: dict[str, ModuleType] = {m.NAME: m for m in MODULES}


def run_claim(ctx: Context, name: str, out: Path) -> Claim:
    """Run one claim and write ``claim_<name>.md`` and ``.json`` under ``out``; return the outcome."""
    from qra_bench.errors import QRBenchError

    module = CLAIMS[name]
    out.mkdir(parents=True, exist_ok=True)
    # Files of an earlier run must not sit beside a new verdict (the table-1 pick file is reused, never stale).
    for stale in (f"claim_{name}.png", *getattr(module, "STALE", ())):
        (out / stale).unlink(missing_ok=True)
    try:
        claim = module.run(ctx, out)
    except NotTestable as exc:
        claim = Claim(name, f"not testable yet: {exc.reason}", exc.body, exc.numbers)
    except QRBenchError as exc:  # the table's recipe or budget cannot be rebuilt: a data gap, not a bug
        claim = Claim(name, f"not testable yet: {exc}", [], {})
    claim.plot = claim.numbers.get("plot") if (out / f"claim_{name}.png").is_file() else None
    lines = [
        f"# Claim `{name}`: {module.TITLE}",
        "",
        f"**Paper**: {module.PAPER}",
        "",
        f"**Verdict:** {claim.verdict}",
        "",
    ]
    if claim.body:
        lines += ["## Ours", "", *claim.body, ""]
    if claim.plot:
        lines += [f"![{name}]({claim.plot})", ""]
    uses = module.USES_SURROGATE
    lines += [*ctx.source_lines(uses), f"- regenerate: `{ctx.command(name, uses, out)}`", ""]
    (out / f"claim_{name}.md").write_text("\n".join(lines))
    record = {
        "claim": name,
        "title": module.TITLE,
        "paper": module.PAPER,
        "verdict": claim.verdict,
        "scenario": ctx.scenario.name,
        "budget": ctx.budget_name,
        "table": ctx.table_shown,
        "table_hash": ctx.table_hash,
        "surrogate": ctx.surrogate_shown if uses else None,
        "numbers": claim.numbers,
    }
    (out / f"claim_{name}.json").write_text(json.dumps(json_safe(record), indent=1, default=str) + "\n")
    return claim


def _int_list(text: str) -> tuple[int, ...]:
    from qra_bench.cli import int_list

    return int_list(text, "seeds")


def parser() -> argparse.ArgumentParser:
    """The command line of ``experiments/claims.py``."""
    from qra_bench.scenarios import SCENARIOS

    p = argparse.ArgumentParser(description="Regenerate the paper's claims on a scenario's results table.")
    p.add_argument("--claim", default="all", help=f"all, or a comma list of: {', '.join(CLAIMS)}")
    p.add_argument(
        "--scenario",
        default=None,
        help=f"scenario whose table, budget, metric and surrogate are used: "
        f"{', '.join(s.name for s in SCENARIOS)} (default: the one whose table --table names, else "
        f"the headline, {DEFAULT_SCENARIO})",
    )
    p.add_argument("--table", default=None, help="results table directory (overrides the scenario's)")
    p.add_argument(
        "--surrogate",
        default=None,
        help="surrogate artifact directory (overrides the scenario's xgb surrogate, which is used only "
        "with the scenario's own table)",
    )
    p.add_argument("--out", default=str(RESULTS), help="output directory (default experiments/results)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="evals_to_target: distance to the best known, in the surrogate target's units",
    )
    p.add_argument("--max-evals", type=int, default=100, help="evals_to_target: evaluations per run")
    p.add_argument("--seeds", default="0-9", help="evals_to_target: optimizer seeds")
    p.add_argument("--ablation-seeds", default="0-4", help="ablations: AutoQRA seeds")
    p.add_argument("--generations", type=int, default=None, help="AutoQRA Stage-1 generations (default 12)")
    p.add_argument("--stage2-evals", type=int, default=None, help="AutoQRA Stage-2 predictor evaluations (30)")
    p.add_argument(
        "--repick",
        action="store_true",
        help="table1: search for a new AutoQRA pick instead of reusing the recorded one",
    )
    p.add_argument(
        "--allow-hash-mismatch", action="store_true", help="use a surrogate fitted on an earlier state of the table"
    )
    return p


def context(args: argparse.Namespace) -> Context:
    """The context the parsed command line names: ``--scenario``, else the scenario whose table ``--table``
    names, else the headline; raises :class:`~qra_bench.errors.QRBenchError` on a user error."""
    from qra_bench.errors import QRBenchError
    from qra_bench.scenarios import SCENARIOS

    options = Options(
        tolerance=args.tolerance,
        max_evals=args.max_evals,
        seeds=_int_list(args.seeds),
        ablation_seeds=_int_list(args.ablation_seeds),
        generations=args.generations,
        stage2_evals=args.stage2_evals,
        allow_hash_mismatch=args.allow_hash_mismatch,
        repick=args.repick,
    )
    named = scenario_of_table(args.table) if args.scenario is None and args.table is not None else None
    wanted = args.scenario or DEFAULT_SCENARIO
    scenario = named or next((s for s in SCENARIOS if s.name == wanted), None)
    if scenario is None:
        raise QRBenchError(f"unknown scenario {wanted!r}; shipped: {', '.join(s.name for s in SCENARIOS)}")
    return Context(scenario, options, table=args.table, surrogate=args.surrogate)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the claims named on the command line; 0 on success, 2 on a user error (one line, no traceback)."""
    from qra_bench.errors import QRBenchError

    args = parser().parse_args(argv)
    try:
        names = list(CLAIMS) if args.claim == "all" else [n.strip() for n in args.claim.split(",")]
        bad = [n for n in names if n not in CLAIMS]
        if bad:
            raise QRBenchError(f"unknown claim(s) {', '.join(bad)}; allowed: all, {', '.join(CLAIMS)}")
        if args.max_evals < 1 or not args.tolerance >= 0:
            raise QRBenchError(f"--max-evals must be >= 1 and --tolerance >= 0, got {args.max_evals}, {args.tolerance}")
        ctx = context(args)
    except QRBenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    results = []
    for name in names:
        claim = run_claim(ctx, name, out)
        results.append(claim)
        print(f"{name}: {claim.verdict}", flush=True)
    if len(names) > 1:
        print(
            f"\nScenario {ctx.scenario.name} (budget {ctx.budget_name}), table {ctx.table_shown} (hash "
            f"{ctx.table_hash[:16]}), surrogate {ctx.surrogate_shown or 'none'}\n"
        )
        print(
            "\n".join(
                table(
                    ["claim", "verdict", "file"],
                    [[c.name, c.verdict.split(" — ")[0], str(out / f"claim_{c.name}.md")] for c in results],
                )
            )
        )
    return 0
