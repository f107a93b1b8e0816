"""The live backend: a real trial of a configuration with the benchmark table's model, task and recipe
(:class:`~qra_bench.recipe.LiveTrials`), its rows appended to a table and indexed for later lookups."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

from qra_bench.data import PathLike
from qra_bench.errors import QRBenchError
from qra_bench.harness.backends.table import TableIndex
from qra_bench.harness.results import FRAC_DIGITS, Answer
from qra_bench.recipe import LiveTrials, TrialOptions, settings_from_recipe
from qra_bench.space import QRConfig

__all__ = ["LiveBackend"]


class LiveBackend:
    """Real trials of ``model_name`` on ``task_name`` with the table's recorded ``recipe`` and trial ``options``
    (lm-eval scoring, gradient checkpointing: :func:`~qra_bench.recipe.recorded_options`), appended to ``table``.

    Torch is imported, and the recipe rebuilt (with a warning for keys this qra-bench does not know), on the first
    live question only.
    """

    def __init__(
        self,
        model_name: str,
        task_name: str,
        recipe: dict[str, Any],
        table: PathLike,
        options: Optional[TrialOptions] = None,
    ) -> None:
        self.model_name, self.task_name, self.recipe, self.table = model_name, task_name, recipe, Path(table)
        self.options = options
        self._trials: Optional[LiveTrials] = None

    @property
    def trials(self) -> LiveTrials:
        if self._trials is None:
            settings = settings_from_recipe(self.recipe)
            self._trials = LiveTrials(self.model_name, self.task_name, settings, self.table, options=self.options)
        return self._trials

    def fractions(self) -> tuple[float, ...]:
        """The fidelities a live trial is evaluated at (fractions of the run)."""
        s = self.trials.settings
        return tuple(round(step / s.max_steps, FRAC_DIGITS) for step in s.checkpoints())

    def answer(self, config: QRConfig, fidelity: float, seed: int, *, name: str, index: TableIndex) -> Answer:
        """Run ``config`` at ``seed``, add its rows to ``index`` and answer its row at ``fidelity``; a failed trial
        is a NaN answer, as optimizers expect (its time was still spent)."""
        fractions = self.fractions()
        f = round(fidelity, FRAC_DIGITS)
        if f not in fractions:
            raise QRBenchError(
                f"a live trial of {name!r} is evaluated at fidelities "
                f"{', '.join(f'{x:g}' for x in fractions)}; {fidelity:g} is not one of them"
            )
        result = self.trials.run(config, seed)
        index.add(result.rows)
        row = next(r for r in result.rows if round(r.fidelity_frac, FRAC_DIGITS) == f)
        nan = math.nan
        ok = row.status == "ok"
        return Answer(
            backend="live",
            accuracy=row.accuracy if ok and row.accuracy is not None else nan,
            eval_loss=row.eval_loss if ok and row.eval_loss is not None else nan,
            cost_s=row.time_total_s if row.time_total_s is not None else nan,
            cost_kind="measured",
            seeds=(seed,),
        )
