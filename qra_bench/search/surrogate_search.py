"""Search against a fitted surrogate: what ``qra-bench search`` and ``qra-bench sweep`` run.

:func:`load_problem` binds a surrogate artifact to its results table (refusing a table whose content hash
differs from the one it was fitted on, unless told otherwise) and assembles everything a search needs: the
surrogate's space, a :class:`~qra_bench.memory.MemoryModel` in the chosen budget convention (by default the
table's: the dtypes, layout and batch its trials recorded, so budgets and feasibility agree with the memory
the trials measured and with ``qra-bench bench``; or ``bf16``, the 16-bit storage and training defaults of
:class:`~qra_bench.memory.MemorySettings`, the view of a GPU user), the importance priors the surrogate was fitted with, and the table's trial recipe.

:func:`search_budget` runs one method at one budget: ``autoqra`` (:func:`~qra_bench.search.autoqra_search`)
or any registered optimizer (:func:`~qra_bench.search.make_optimizer`), whose asks are answered by the
surrogate. With ``real_evals > 0`` real trials are spent (:class:`TableTrials` runs them on the table's model
and task through :func:`qra_bench.trial.run_trial` and appends their rows to the table): AutoQRA spends them
in its Stage 2 (refitting the surrogate in memory after each batch); any other method has its ``real_evals``
best predicted configurations measured, and the best measured one wins.

Predictors handed to the search layer are "higher is better": a surrogate of a loss is negated there and
turned back into target units in every :class:`SearchOutcome`.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

import numpy as np
import pandas as pd

from qra_bench.arch import ArchSpec, load_arch
from qra_bench.errors import QRBenchError
from qra_bench.memory import Budget, MemoryBreakdown, MemoryModel, MemorySettings
from qra_bench.space import QRConfig, SearchSpace
from qra_bench.search.autoqra import AutoQRASettings, autoqra_search
from qra_bench.search.base import Priors, as_priors
from qra_bench.search.predictors import Predictor
from qra_bench.search.registry import make_optimizer
from qra_bench.surrogate.artifact import SurrogateArtifact

if TYPE_CHECKING:  # torch-importing modules, loaded only for real trials and exports
    from qra_bench.lora import LoraSettings
    from qra_bench.quant import QuantSettings
    from qra_bench.trial import TrialSettings

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

PathLike = Union[str, os.PathLike]
#: Surrogate-answered asks of a method other than autoqra when the caller gives none.
DEFAULT_OPTIMIZER_EVALS = 100


def _human(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{int(n):,} B"


def _values(frame: pd.DataFrame, column: str) -> tuple[str, ...]:
    return tuple(sorted(set(frame[column].dropna().astype(str))))


# ---------------------------------------------------------------------------------------------------------
# The problem: surrogate + table + space + memory model + priors + recipe
# ---------------------------------------------------------------------------------------------------------
@dataclass
class SurrogateProblem:
    """A surrogate bound to its table, with the memory model and priors a search under a budget needs.

    ``frame`` holds the table's ok rows as read at load time; ``sign`` is +1 for a target where higher is
    better (accuracy) and -1 for a loss, so that ``sign * target`` is always "higher is better".
    """

    artifact: SurrogateArtifact
    surrogate_path: Path
    table_path: Path
    table_hash: str
    frame: pd.DataFrame = field(repr=False)
    arch: ArchSpec
    memory_model: MemoryModel
    priors: Optional[Priors]
    hash_mismatch: bool = False
    quant_backend: Optional[str] = None  # the caller's quantization backend; None: the table's
    memory_convention: str = "table"  # see load_problem
    _predictor: Optional[Predictor] = field(default=None, repr=False)

    @property
    def space(self) -> SearchSpace:
        return self.artifact.space

    @property
    def target(self) -> str:
        return self.artifact.target

    @property
    def sign(self) -> float:
        return 1.0 if self.artifact.higher_is_better else -1.0

    @property
    def backend(self) -> str:
        return self.memory_model.settings.backend

    # -- prediction ----------------------------------------------------------------------------------------
    def predict(self, bit_idx: np.ndarray, rank_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` of the target at full fidelity, target units, for rung indices of shape (n, L)."""
        mean, std = self.artifact.predict_indices(np.atleast_2d(bit_idx), np.atleast_2d(rank_idx), 1.0)
        return np.asarray(mean, dtype=float), np.asarray(std, dtype=float)

    def predictor(self) -> Predictor:
        """The search layer's view: ``sign * mean`` (higher is better) and the std, at full fidelity."""
        if self._predictor is None:
            self._predictor = self._make_predictor(self.artifact.estimator)
        return self._predictor

    def _make_predictor(self, estimator: Any) -> Predictor:
        artifact, sign = self.artifact, self.sign

        def predict(bit_idx: np.ndarray, rank_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            mean, std = estimator.predict(artifact.features(bit_idx, rank_idx, 1.0), return_std=True)
            return sign * np.asarray(mean, dtype=float), np.asarray(std, dtype=float)

        return predict

    def refit(self) -> Predictor:
        """A predictor from a fresh copy of the surrogate's estimator fitted on the table as it is now.

        The same encoder (features, priors, memory offset) and hyper-parameters as the artifact; only the rows
        change. Nothing is written: the artifact on disk stays bound to the table hash it was fitted on.
        """
        from sklearn.base import clone

        from qra_bench.table import ResultsTable

        frame = ResultsTable(self.table_path).read()
        bi, ri, keep = self.rung_indices(frame)
        frame = frame[keep].reset_index(drop=True)
        y = frame[self.target].astype(float).to_numpy()
        fracs = frame["fidelity_frac"].astype(float).to_numpy()
        ok = np.isfinite(y)
        if not self.artifact.encoder_spec.include_fidelity:
            ok &= np.isclose(fracs, 1.0)  # a full-fidelity surrogate learned from full-fidelity rows only
        if not ok.any():
            raise QRBenchError(f"table {self.table_path} has no rows to refit the surrogate on")
        X = self.artifact.features(bi[ok], ri[ok], fracs[ok])
        estimator = clone(self.artifact.estimator).fit(X, y[ok], groups=frame["config_hash"].to_numpy(dtype=str)[ok])
        self._predictor = self._make_predictor(estimator)
        return self._predictor

    # -- the table -----------------------------------------------------------------------------------------
    def rung_indices(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rung indices (n, L) of the rows of ``frame`` and a mask of the rows on the surrogate's ladders."""
        space = self.space
        n = len(frame)
        bi = np.zeros((n, space.n_blocks), dtype=np.int64)
        ri = np.zeros((n, space.n_blocks), dtype=np.int64)
        keep = np.zeros(n, dtype=bool)
        bit_pos = {b: i for i, b in enumerate(space.bits)}
        rank_pos = {r: i for i, r in enumerate(space.ranks)}
        for k, (bits, ranks) in enumerate(zip(frame["bits"], frame["ranks"])):
            bits, ranks = [int(b) for b in bits], [int(r) for r in ranks]
            # Rows of another depth or off the ladders (possible only with a hash-mismatched table) are skipped.
            if (
                len(bits) != space.n_blocks
                or any(b not in bit_pos for b in bits)
                or any(r not in rank_pos for r in ranks)
            ):
                continue
            bi[k] = [bit_pos[b] for b in bits]
            ri[k] = [rank_pos[r] for r in ranks]
            keep[k] = True
        return bi, ri, keep

    def table_configs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The table's distinct configurations: rung indices (m, L) each and their observed full-fidelity
        target (mean over seeds; NaN where a configuration has no finite full-fidelity row)."""
        frame = self.frame
        bi, ri, keep = self.rung_indices(frame)
        frame, bi, ri = frame[keep].reset_index(drop=True), bi[keep], ri[keep]
        if frame.empty:
            return bi, ri, np.zeros(0)
        y = frame[self.target].astype(float).where(np.isclose(frame["fidelity_frac"].astype(float), 1.0))
        observed = y.groupby(frame["config_hash"], sort=False).mean()
        first = ~frame["config_hash"].duplicated().to_numpy()
        hashes = frame["config_hash"].to_numpy()[first]
        return bi[first], ri[first], observed.reindex(hashes).to_numpy(dtype=float)

    def recipe(self, column: str) -> str:
        """The one value of ``column`` (``model_name``, ``task_name``) over the table's ok rows."""
        values = _values(self.frame, column)
        if len(values) != 1:
            raise QRBenchError(
                f"table {self.table_path} has {len(values)} values of {column} ({', '.join(values[:4])}); "
                "real trials need a table of one model and task"
            )
        return values[0]

    def _recorded(self, column: str) -> dict:
        text = next(iter(self.frame[column].dropna()), None)
        return json.loads(text) if text else {}

    def quant_settings(self) -> "QuantSettings":
        """The table's quantization settings (its backend unless the caller chose one; the memory model's
        group size). The memory layout is not the backend: torchao's trials are charged the packed
        ``formula`` layout, so the backend comes from the recorded settings."""
        from qra_bench.quant import QuantSettings

        recorded = self._recorded("quant_settings")
        known = {f.name for f in fields(QuantSettings)}
        settings = QuantSettings(**{k: v for k, v in recorded.items() if k in known})
        backend = self.quant_backend or recorded.get("backend") or self.backend
        return replace(settings, backend=backend, group_size=self.memory_model.settings.group_size)

    def lora_settings(self) -> "LoraSettings":
        """The LoRA settings of the table's trials (alpha per rank, dropout, rsLoRA); defaults if unrecorded."""
        from qra_bench.lora import LoraSettings

        recorded = self._recorded("trial_settings").get("lora") or {}
        known = {f.name for f in fields(LoraSettings)}
        return LoraSettings(**{k: v for k, v in recorded.items() if k in known})

    def trial_settings(self, steps: Optional[int] = None) -> "TrialSettings":
        """The table's trial recipe (so new rows line up with the old ones); ``steps`` overrides max_steps."""
        from qra_bench.trial import TrialSettings

        recorded = self._recorded("trial_settings")
        known = {f.name for f in fields(TrialSettings)} - {"quant", "lora"}
        kw = {k: v for k, v in recorded.items() if k in known}
        if "fidelities" in kw:
            kw["fidelities"] = tuple(float(f) for f in kw["fidelities"])
        settings = TrialSettings(**kw, quant=self.quant_settings(), lora=self.lora_settings())
        return replace(settings, max_steps=steps) if steps else settings


MEMORY_CONVENTIONS = ("table", "bf16")


def load_problem(
    table: PathLike,
    surrogate: PathLike,
    arch: Optional[str] = None,
    backend: Optional[str] = None,
    allow_hash_mismatch: bool = False,
    memory: str = "table",
) -> SurrogateProblem:
    """Load the surrogate at ``surrogate``, check it against the table at ``table``, and build the problem.

    Parameters
    ----------
    arch
        Preset or config JSON of the base model (default: the architecture the surrogate was fitted for);
        it must have the surrogate's number of blocks.
    backend
        Quantization layout of the memory model and of the exported quant config (default: the table's).
    allow_hash_mismatch
        Use the surrogate even if the table's content hash differs from the one it was fitted on.
    memory
        Budget convention: ``table`` (the memory the table's trials recorded: their dtypes, batch and, solved
        from ``mem_predicted_bytes``, sequence length) or ``bf16`` (16-bit weights, adapters, gradients and
        optimizer states). Named budgets are relative (``uniform-4bit`` is that configuration's memory), but the
        two conventions weigh unquantized blocks and adapters differently, so they admit different configurations.
    """
    from qra_bench.memory import solve_seq_len
    from qra_bench.table import ResultsTable

    if memory not in MEMORY_CONVENTIONS:
        raise QRBenchError(f"unknown memory convention {memory!r}; use {' or '.join(MEMORY_CONVENTIONS)}")

    results = ResultsTable(table)
    if not results.exists:
        raise QRBenchError(f"no table at {table}")
    artifact = SurrogateArtifact.load(surrogate, table_path=table, allow_hash_mismatch=True)
    actual = results.content_hash()
    mismatch = actual != artifact.table_hash
    if mismatch and not allow_hash_mismatch:
        raise QRBenchError(
            f"table {table} has content hash {actual[:16]}..., but surrogate {surrogate} was fitted on "
            f"hash {artifact.table_hash[:16]}...: refit it with `qra-bench fit`, or pass "
            "--allow-hash-mismatch to use it anyway"
        )
    if artifact.multi_fidelity:
        raise QRBenchError(
            f"surrogate {surrogate} is multi-fidelity (it needs an observed low-fidelity result per "
            "configuration); search needs one fitted with --fidelity all or full"
        )
    spec = artifact.encoder_spec
    if arch is None:
        arch_spec = ArchSpec(**spec.arch)
    else:
        arch_spec = load_arch(arch)
        if arch_spec.n_blocks != artifact.space.n_blocks:
            raise QRBenchError(
                f"architecture {arch_spec.name} has {arch_spec.n_blocks} blocks; surrogate {surrogate} "
                f"describes {artifact.space.n_blocks}"
            )
    if memory == "table":
        settings, _ = solve_seq_len(arch_spec, MemorySettings(**spec.memory_settings), spec.memory_offset)
        settings = replace(settings, backend=backend or settings.backend)
    else:
        settings = MemorySettings(
            backend=backend or spec.memory_settings.get("backend", "hqq"),
            group_size=int(spec.memory_settings.get("group_size", 128)),
        )
    memory_model = MemoryModel(arch_spec, settings, artifact.space)
    iq, ir = spec.importance_q, spec.importance_r
    # All-zero priors mean "none were found" when the surrogate was fitted (see surrogate.fit._importance).
    priors = (
        as_priors(Priors(importance_q=iq, importance_r=ir), artifact.space.n_blocks) if iq and any(iq + ir) else None
    )
    return SurrogateProblem(
        artifact=artifact,
        surrogate_path=Path(surrogate),
        table_path=Path(table),
        table_hash=actual,
        frame=results.read(),
        arch=arch_spec,
        memory_model=memory_model,
        priors=priors,
        hash_mismatch=mismatch,
        quant_backend=backend,
        memory_convention=memory,
    )


# ---------------------------------------------------------------------------------------------------------
# Real trials on the table's model and task
# ---------------------------------------------------------------------------------------------------------
class TableTrials:
    """``real_eval(configs) -> qualities`` for :func:`autoqra_search`: one real trial per configuration on the
    table's base model and task, with the table's recipe, its rows appended to the table.

    Returns ``sign * target`` of each trial's final (full-fidelity) row, so higher is better; ``measured``
    keeps ``(config, target)`` in target units, ``finals`` each trial's full-fidelity row, and
    ``rows_appended`` counts the rows written. ``threads`` overrides the recipe's torch CPU threads (it changes
    speed, and the last bits of the numbers, not the recipe); ``progress`` receives one line before and one
    after every trial, numbered out of ``planned`` when given.
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
        self.finals: list[Any] = []  # TrialRow of each trial's full fidelity
        self.rows_appended = 0
        self._context = None

    def _say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)

    def _load(self):
        if self._context is None:
            from qra_bench.models import load_base
            from qra_bench.tasks import load_task

            t0 = time.perf_counter()
            base = load_base(self.problem.recipe("model_name"))  # verifies the checkpoint's sha256
            settings = self.problem.trial_settings(self.steps)
            if self.threads:
                settings = replace(settings, threads=int(self.threads))
            self._context = (base, load_task(self.problem.recipe("task_name"), base.tokenizer), settings)
            self._say(
                f"base model {base.name} (sha256 {base.sha256[:16]}..., verified) and task "
                f"{self._context[1].name} loaded in {time.perf_counter() - t0:.1f} s; trials of "
                f"{settings.max_steps} steps, {settings.quant.backend}, {settings.threads or 'default'} threads"
            )
        return self._context

    def __call__(self, configs: Sequence[QRConfig]) -> list[float]:
        from qra_bench.table import ResultsTable
        from qra_bench.trial import run_trial

        base, task, settings = self._load()
        values = []
        for cfg in configs:
            k = len(self.measured) + 1
            label = f"real trial {k}/{self.planned}" if self.planned else f"real trial {k}"
            self._say(f"{label}: bits {list(cfg.bits)} ranks {list(cfg.ranks)} seed {self.seed} ...")
            result = run_trial(base, task, cfg, self.seed, settings)
            ResultsTable(self.problem.table_path).append(list(result.rows))
            self.rows_appended += len(result.rows)
            value = getattr(result.final, self.problem.target)
            value = float("nan") if value is None else float(value)
            self.measured.append((cfg, value))
            self.finals.append(result.final)
            self._say(
                f"{label} done in {result.final.time_total_s:.1f} s: {self.problem.target} {value:.4f}, "
                f"accuracy {result.final.accuracy:.4f}"
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
