"""Option parsing shared by the ``qra-bench`` commands: integer lists, fractions, trial settings, scenarios.

Every helper turns what a user typed into values or raises :class:`~qra_bench.errors.QRBenchError` with one
line saying what is wrong and what to give instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from qra_bench.errors import QRBenchError

if TYPE_CHECKING:  # the trial layer imports torch: only when a command runs
    from qra_bench.trial import TrialSettings

__all__ = [
    "EVAL_HELP",
    "EVAL_LIMIT_HELP",
    "EVAL_METRIC_HELP",
    "GRAD_CHECKPOINTING_HELP",
    "MEMORY_HELP",
    "fraction_list",
    "int_list",
    "scenario_paths",
    "trial_settings",
]

#: Help of ``--memory`` (search, sweep).
MEMORY_HELP = (
    "Budget convention: table (the memory the table's trials recorded, as `qra-bench bench` counts it) "
    "or bf16 (16-bit weights, adapters and optimizer states: a GPU run's view)."
)
#: Help of ``--eval`` (trial, collect).
EVAL_HELP = (
    "lm-eval tasks scored at every checkpoint (comma-separated: shipped qra_news_topic/headline/cloze, "
    "'shipped', task YAML files or lm-eval names); accuracy becomes their mean."
)
#: Help of ``--eval-limit`` (trial, collect).
EVAL_LIMIT_HELP = "lm-eval examples per task (default: all)."
#: Help of ``--eval-metric`` (trial, collect, reproduce table1).
EVAL_METRIC_HELP = "lm-eval metric per task: acc or acc_norm."
#: Help of ``--grad-checkpointing`` (trial, collect, reproduce table1).
GRAD_CHECKPOINTING_HELP = "Gradient checkpointing during fine-tuning."


def int_list(text: str, what: str) -> tuple[int, ...]:
    """``"0"``, ``"0,1,2"`` or ``"0-4"`` (inclusive) as integers."""
    values: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        lo, sep, hi = part.partition("-")
        try:
            values.extend(range(int(lo), int(hi) + 1) if sep and lo else [int(part)])
        except ValueError:
            raise QRBenchError(f"cannot parse {what} {text!r}; give integers like 0 or 0,1,2 or 0-4") from None
        if sep and lo and int(lo) > int(hi):
            raise QRBenchError(f"{what} range {part!r} is empty (its start is above its end); give LO-HI with LO <= HI")
    if not values:
        raise QRBenchError(f"no {what} in {text!r}; give integers like 0 or 0,1,2 or 0-4")
    return tuple(values)


def fraction_list(text: str) -> tuple[float, ...]:
    """``"0.25,0.5,1.0"`` as fractions of a run, each in (0, 1]."""
    try:
        values = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise QRBenchError(f"cannot parse fidelities {text!r}; give fractions of the run like 0.25,0.5,1.0") from None
    if not values or any(not 0 < v <= 1 for v in values):
        raise QRBenchError(f"fidelities {text!r} must be fractions in (0, 1]")
    return values


def trial_settings(
    steps: Optional[int], backend: str, group_size: int, threads: Optional[int], lr: Optional[float] = None
) -> TrialSettings:
    """The recipe's trial settings with the options given on the command line replacing its defaults."""
    from dataclasses import replace

    from qra_bench.quant import QuantSettings
    from qra_bench.trial import TrialSettings

    if lr is not None and not 0 < lr < 1:
        raise QRBenchError(f"learning rate {lr} must lie in (0, 1), e.g. 0.001")
    base = TrialSettings()
    return replace(
        base,
        max_steps=steps or base.max_steps,
        threads=threads,
        lr=base.lr if lr is None else lr,
        quant=replace(QuantSettings(), backend=backend, group_size=group_size),
    )


def scenario_paths(
    scenario: Optional[str], table: Optional[str], surrogate: Optional[str], budget: Optional[str]
) -> tuple[str, str, str]:
    """``(table, surrogate, budget)``: a scenario's, each replaced by the one given; without a scenario the table
    and surrogate must be given (budget default ``uniform-4bit``)."""
    if scenario is not None:
        from qra_bench.scenarios import get_scenario

        s = get_scenario(scenario, complete=False)
        return (table or str(s.table_path()), surrogate or str(s.surrogate_path("xgb")), budget or s.budget)
    if table is None or surrogate is None:
        raise QRBenchError("give --scenario NAME (see `qra-bench scenarios`), or both --table and --surrogate")
    return table, surrogate, budget or "uniform-4bit"
