"""Search against a fitted surrogate: what ``qra-bench search`` and ``qra-bench sweep`` run.

The problem (a surrogate bound to its table, the space, memory model, priors and recipe) is
:class:`~qra_bench.search.problem.SurrogateProblem`, built by :func:`~qra_bench.search.problem.load_problem`;
both are importable from here too.

:func:`search_budget` runs one method at one budget: ``autoqra`` (:func:`~qra_bench.search.autoqra_search`)
or any registered optimizer (:func:`~qra_bench.search.make_optimizer`), whose asks are answered by the
surrogate. With ``real_evals > 0`` real trials are spent (:class:`TableTrials` runs them on the table's model
and task with its recipe and appends their rows to the table): AutoQRA spends them in its Stage 2 (refitting
the surrogate in memory after each batch); any other method has its ``real_evals`` best predicted
configurations measured, and the best measured one wins.

Predictors handed to the search layer are "higher is better": a surrogate of a loss is negated there and
turned back into target units in every :class:`SearchOutcome`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

import numpy as np

from qra_bench.errors import QRBenchError
from qra_bench.memory import Budget, MemoryBreakdown
from qra_bench.recipe import LiveTrials, recorded_options
from qra_bench.search.autoqra import AutoQRASettings, autoqra_search
from qra_bench.search.predictors import Predictor
from qra_bench.search.problem import SurrogateProblem, load_problem
from qra_bench.search.registry import make_optimizer
from qra_bench.space import QRConfig

if TYPE_CHECKING:
    from qra_bench.table_schema import TrialRow

__all__ = [
    "DEFAULT_OPTIMIZER_EVALS",
    "SearchOutcome",
    "SurrogateProblem",
    "TableTrials",
    "format_outcome",
    "load_problem",
    "run_search",
    "search_budget",
    "search_settings",
]

#: Surrogate-answered asks of a method other than autoqra when the caller gives none.
DEFAULT_OPTIMIZER_EVALS = 100


def _human(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{int(n):,} B"


# ---------------------------------------------------------------------------------------------------------
# Real trials on the table's model and task
# ---------------------------------------------------------------------------------------------------------
class TableTrials:
    """``real_eval(configs) -> qualities`` for :func:`autoqra_search`: one real trial per configuration on the
    table's base model and task, with the table's recipe, its rows appended to the table
    (:class:`~qra_bench.recipe.LiveTrials`).

    Returns ``sign * target`` of each trial's final (full-fidelity) row, so higher is better; ``measured``
    keeps ``(config, target)`` in target units, ``finals`` each trial's full-fidelity row, and
    ``rows_appended`` counts the rows written. ``threads`` overrides the recipe's torch CPU threads (it changes
    speed, and the last bits of the numbers, not the recipe); ``progress`` receives one line when the base model
    and task are loaded, and one before and one after every trial, numbered out of ``planned`` when given.
    """

    def __init__(
        self,
        problem: SurrogateProblem,
        seed: int = 0,
        steps: Optional[int] = None,
        threads: Optional[int] = None,
        progress: Optional[Callable[[str], None]] = None,
        planned: Optional[int] = None,
    ) -> None:
        self.problem, self.seed, self.steps, self.threads = problem, int(seed), steps, threads
        self.progress, self.planned = progress, planned
        self.measured: list[tuple[QRConfig, float]] = []
        self.finals: list[TrialRow] = []  # each trial's full-fidelity row
        self._live: Optional[LiveTrials] = None

    @property
    def rows_appended(self) -> int:
        return self._live.rows_appended if self._live is not None else 0

    def _say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)

    def _trials(self) -> LiveTrials:
        if self._live is None:
            problem = self.problem
            settings = problem.trial_settings(self.steps, threads=self.threads)
            model, task = problem.recipe("model_name"), problem.recipe("task_name")
            options = recorded_options(problem.frame)  # lm-eval scoring as the table's rows had it
            self._live = LiveTrials(model, task, settings, problem.table_path, options=options, progress=self.progress)
            self._live.load()
        return self._live

    def __call__(self, configs: Sequence[QRConfig]) -> list[float]:
        live, target = self._trials(), self.problem.target
        values = []
        for cfg in configs:
            k = len(self.measured) + 1
            label = f"real trial {k}/{self.planned}" if self.planned else f"real trial {k}"
            self._say(f"{label}: bits {list(cfg.bits)} ranks {list(cfg.ranks)} seed {self.seed} ...")
            final = live.run(cfg, self.seed).final
            value = getattr(final, target)
            value = float("nan") if value is None else float(value)
            self.measured.append((cfg, value))
            self.finals.append(final)
            self._say(
                f"{label} done in {final.time_total_s:.1f} s: {target} {value:.4f}, accuracy {final.accuracy:.4f}"
            )
            values.append(self.problem.sign * value)
        return values


# ---------------------------------------------------------------------------------------------------------
# One search at one budget
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchOutcome:
    """What one search at one budget found, in target units.

    ``predicted_*`` are the (possibly refitted) surrogate's at full fidelity; ``measured`` the real trial's
    target when the configuration was measured. ``candidates`` are ``(config, predicted mean, std, measured)``,
    best first. ``n_predictor_rows`` counts configurations the surrogate predicted.
    """

    method: str
    seed: int
    budget: Budget
    config: QRConfig
    predicted_mean: float
    predicted_std: float
    measured: Optional[float]
    memory: MemoryBreakdown
    feasible: bool
    n_predictor_rows: int
    n_real_evals: int
    candidates: tuple[tuple[QRConfig, float, float, Optional[float]], ...]
    wall_s: float


def search_settings(
    generations: Optional[int] = None, evals: Optional[int] = None, base: Optional[AutoQRASettings] = None
) -> AutoQRASettings:
    """AutoQRA settings with the Stage-1 ``generations`` and Stage-2 ``evals`` overridden when given."""
    base = base or AutoQRASettings()
    evo = base.evolution if generations is None else replace(base.evolution, generations=int(generations))
    return replace(base, evolution=evo, stage2_evals=base.stage2_evals if evals is None else int(evals))


def _make_optimizer(problem: SurrogateProblem, method: str, budget: Budget, seed: int, predictor: Predictor):
    kw: dict[str, Any] = {"priors": problem.priors}
    try:
        return make_optimizer(method, problem.space, problem.memory_model, budget, seed, predictor=predictor, **kw)
    except TypeError as exc:  # an optimizer without a predictor screen (random, uniform, smac-hpo, milp)
        if "predictor" not in str(exc):
            raise
        return make_optimizer(method, problem.space, problem.memory_model, budget, seed, **kw)


class _Counted:
    """Counts the rows a predictor is asked for (the cost measure for any method)."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor, self.rows = predictor, 0

    def __call__(self, bit_idx: np.ndarray, rank_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.rows += len(np.atleast_2d(bit_idx))
        return self.predictor(bit_idx, rank_idx)

    def swap(self, predictor: Predictor) -> "_Counted":
        """Count on with ``predictor`` (the refitted surrogate) in place of the old one."""
        self.predictor = predictor
        return self


def search_budget(
    problem: SurrogateProblem,
    budget: Union[Budget, str, int],
    method: str = "autoqra",
    seed: int = 0,
    *,
    settings: Optional[AutoQRASettings] = None,
    evals: Optional[int] = None,
    real_eval: Optional[Callable[[list[QRConfig]], Sequence[float]]] = None,
    real_evals: int = 0,
    refit: Optional[Callable[[], Predictor]] = None,
) -> SearchOutcome:
    """Run ``method`` at ``budget`` against the surrogate (and ``real_evals`` real trials through ``real_eval``).

    Parameters
    ----------
    budget
        A :class:`Budget`, a budget string of the problem's memory model (``uniform-4bit``,
        ``0.5xfp16-lora``, ``3.5GiB``) or bytes.
    method
        ``autoqra`` or any registered optimizer name.
    settings
        AutoQRA's settings (default :class:`AutoQRASettings`); ``evals`` overrides its Stage-2 evaluations.
    evals
        For other methods: the surrogate-answered asks (default :data:`DEFAULT_OPTIMIZER_EVALS`).
    """
    t0 = time.perf_counter()
    mm = problem.memory_model
    if isinstance(budget, str):
        budget = mm.budget(budget)
    elif not isinstance(budget, Budget):
        budget = Budget(name=f"{int(budget)}", bytes=int(budget))
    if real_evals > 0 and real_eval is None:
        raise QRBenchError("real_evals > 0 needs a real_eval callback")
    sign = problem.sign
    pred = _Counted(problem.predictor())
    space = problem.space
    if method == "autoqra":
        res = autoqra_search(
            space,
            mm,
            budget,
            pred,
            problem.priors,
            seed=seed,
            real_eval=real_eval if real_evals > 0 else None,
            real_evals=real_evals,
            refit=(lambda: pred.swap(refit())) if (refit and real_evals > 0) else None,
            settings=search_settings(evals=evals, base=settings),
        )
        cands = tuple(
            (c.config, sign * c.predicted_mean, c.predicted_std, None if c.measured is None else sign * c.measured)
            for c in res.candidates
        )
        n_real = res.n_real_evals
    else:
        cands, n_real = _optimizer_search(
            problem,
            budget,
            method,
            seed,
            pred,
            evals or DEFAULT_OPTIMIZER_EVALS,
            real_eval if real_evals > 0 else None,
            real_evals,
        )
    best = cands[0]
    cfg = best[0]
    return SearchOutcome(
        method=method,
        seed=int(seed),
        budget=budget,
        config=cfg,
        predicted_mean=float(best[1]),
        predicted_std=float(best[2]),
        measured=best[3],
        memory=mm.breakdown(cfg),
        feasible=mm.is_feasible(cfg, budget),
        n_predictor_rows=pred.rows,
        n_real_evals=n_real,
        candidates=cands,
        wall_s=time.perf_counter() - t0,
    )


def _optimizer_search(
    problem: SurrogateProblem,
    budget: Budget,
    method: str,
    seed: int,
    pred: _Counted,
    n_asks: int,
    real_eval,
    real_evals: int,
):
    """``n_asks`` asks of a registered optimizer told the surrogate's prediction; then, with real evaluations,
    the ``real_evals`` best predicted configurations measured (the best measured one first)."""
    sign = problem.sign
    opt = _make_optimizer(problem, method, budget, seed, pred)
    predicted: dict[QRConfig, tuple[float, float]] = {}
    for _ in range(n_asks):
        cfg = opt.ask()
        if cfg not in predicted:  # uniform baselines ask the same configuration every time
            bi, ri = problem.space.bit_index(cfg), problem.space.rank_index(cfg)
            m, s = pred(bi[None], ri[None])
            predicted[cfg] = (float(m[0]), float(s[0]))
        opt.tell(cfg, predicted[cfg][0])
    # Best predicted first; ties keep ask order (dicts are ordered), so a seed reproduces the list.
    order = sorted(predicted, key=lambda c: -predicted[c][0])
    measured: dict[QRConfig, float] = {}
    if real_eval is not None and real_evals > 0:
        chosen = order[:real_evals]
        for cfg, v in zip(chosen, real_eval(list(chosen))):
            measured[cfg] = float(v)
        order = (
            sorted(chosen, key=lambda c: -measured[c] if math.isfinite(measured[c]) else math.inf) + order[real_evals:]
        )
    cands = tuple(
        (c, sign * predicted[c][0], predicted[c][1], sign * measured[c] if c in measured else None) for c in order
    )
    return cands, len(measured)


# ---------------------------------------------------------------------------------------------------------
# The `qra-bench search` command
# ---------------------------------------------------------------------------------------------------------
def run_search(
    problem: SurrogateProblem,
    budget: str,
    method: str = "autoqra",
    seed: int = 0,
    real_evals: int = 0,
    *,
    generations: Optional[int] = None,
    evals: Optional[int] = None,
    steps: Optional[int] = None,
    refit: bool = True,
    threads: Optional[int] = None,
    progress: Optional[Callable[[str], None]] = None,
) -> tuple[SearchOutcome, Optional[TableTrials]]:
    """:func:`search_budget` with real trials on the table's model and task when ``real_evals > 0``.

    ``steps`` overrides the trials' training steps (default: the table's recipe); ``refit`` refits the
    surrogate in memory on the grown table after each batch of real trials (AutoQRA only); ``threads`` and
    ``progress`` go to :class:`TableTrials`.
    """
    if real_evals < 0:
        raise QRBenchError(f"--real-evals must be >= 0, got {real_evals}")
    trials = (
        TableTrials(problem, seed=seed, steps=steps, threads=threads, progress=progress, planned=real_evals)
        if real_evals > 0
        else None
    )

    def refit_with_progress() -> Predictor:
        t0 = time.perf_counter()
        predictor = problem.refit()
        if progress is not None:
            progress(f"surrogate refitted in memory on the grown table in {time.perf_counter() - t0:.1f} s")
        return predictor

    outcome = search_budget(
        problem,
        budget,
        method,
        seed,
        settings=search_settings(generations, None),
        evals=evals,
        real_eval=trials,
        real_evals=real_evals,
        refit=refit_with_progress if refit else None,
    )
    return outcome, trials


def format_outcome(problem: SurrogateProblem, outcome: SearchOutcome, trials: Optional[TableTrials] = None) -> str:
    """The search report: surrogate, budget, configuration, prediction, measurement, itemized memory."""
    a, mm, cfg, b = problem.artifact, problem.memory_model, outcome.config, outcome.budget
    total = outcome.memory.total
    lines = [
        f"surrogate      {a.manifest['model']['kind']} of {problem.target} ({a.manifest['training']['n_configs']} "
        f"configurations) at {problem.surrogate_path}; table {problem.table_path} hash {problem.table_hash[:16]}"
        + ("  (HASH MISMATCH allowed)" if problem.hash_mismatch else ""),
        f"memory model   {problem.arch.name}, backend {mm.settings.backend}, group {mm.settings.group_size}, "
        f"{mm.settings.weight_dtype_bytes}-byte weights and optimizer states (budget convention {problem.memory_convention})",
        f"method         {outcome.method}, seed {outcome.seed}, {outcome.n_predictor_rows} surrogate predictions, "
        f"{outcome.n_real_evals} real trials",
        f"budget         {b.name} = {b.bytes:,} bytes ({_human(b.bytes)})",
        f"bits           {list(cfg.bits)} (avg {cfg.avg_bits:.2f})",
        f"ranks          {list(cfg.ranks)} (avg {cfg.avg_rank:.2f})",
        f"config hash    {cfg.hash}",
        f"predicted      {problem.target} {outcome.predicted_mean:.4f} ± {outcome.predicted_std:.4f} "
        "(surrogate mean ± std at full fidelity)",
    ]
    if outcome.measured is not None:
        lines.append(f"measured       {problem.target} {outcome.measured:.4f} (real trial, seed {outcome.seed})")
    if trials is not None:
        lines.append(
            f"real trials    {len(trials.measured)} run, {trials.rows_appended} rows appended to "
            f"{problem.table_path}"
            + "".join(f"\n               {c.hash[:12]}: {problem.target} {v:.4f}" for c, v in trials.measured)
        )
        if trials.rows_appended:
            lines.append(
                f"               the table changed: refit the surrogate with `qra-bench fit --table "
                f"{problem.table_path}` before the next search"
            )
    verdict = "fits" if outcome.feasible else "does NOT fit"
    lines.append(f"memory         {verdict}: {total:,} of {b.bytes:,} bytes (margin {b.bytes - total:+,} bytes)")
    return "\n".join(lines + ["", outcome.memory.format_table()])


def search_record(problem: SurrogateProblem, outcome: SearchOutcome) -> dict:
    """``search.json``: how the configuration was found (method, budget, prediction, memory, provenance)."""
    return {
        "method": outcome.method,
        "seed": outcome.seed,
        "budget": {"name": outcome.budget.name, "bytes": outcome.budget.bytes},
        "config": {"bits": list(outcome.config.bits), "ranks": list(outcome.config.ranks), "hash": outcome.config.hash},
        "target": problem.target,
        "predicted_mean": outcome.predicted_mean,
        "predicted_std": outcome.predicted_std,
        "measured": outcome.measured,
        "feasible": outcome.feasible,
        "memory": outcome.memory.to_dict(),
        "memory_settings": {
            "arch": problem.arch.name,
            "backend": problem.backend,
            "group_size": problem.memory_model.settings.group_size,
        },
        "surrogate": str(problem.surrogate_path),
        "table": str(problem.table_path),
        "table_hash": problem.table_hash,
        "hash_mismatch": problem.hash_mismatch,
        "n_predictor_rows": outcome.n_predictor_rows,
        "n_real_evals": outcome.n_real_evals,
        "candidates": [
            {"bits": list(c.bits), "ranks": list(c.ranks), "predicted_mean": m, "predicted_std": s, "measured": v}
            for c, m, s, v in outcome.candidates
        ],
    }
