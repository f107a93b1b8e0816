"""The main job on the embedded default (``qra-bench run``, what ``make run`` calls).

One pass over the pipeline on the shipped tiny / news table, in about ten minutes on two cores:

1. verify the shipped results table (schema, content hash against its ``TABLE.md``, enough full-fidelity
   trials) and the shipped surrogate (its manifest bound to that hash); with no surrogate shipped, fit one
   on the fly (XGBoost ensemble of ``eval_loss``) into the run's folder (:mod:`qra_bench.job_inputs`);
2. the memory of the budget (``uniform-4bit``) for tiny and for llama-3.1-8b, one line each;
3. a budget sweep against the surrogate only (no trials), ~12 budgets over the table's memory range;
4. AutoQRA at the budget through :func:`qra_bench.search.surrogate_search.run_search`, spending a few real
   fine-tunes of the table's recipe (default 3);
5. the baselines, uniform 4-bit and 16-bit LoRA at rank 16, read from the table (mean over seeds), or run
   live when asked;
6. a Table-1 analogue (found configuration vs baselines: eval_loss, accuracy, average bits and rank,
   memory, whether it fits) and where every output went.

Real rows never touch the shipped table unless asked (``append_to_table``): the run works on a copy of it in
``runs/<timestamp>/table/`` (same content hash, so the surrogate binding holds), and new rows land there.
Progress goes to stderr, one line per stage with elapsed seconds and two lines per real trial; the report
goes to stdout.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, TextIO

import numpy as np
import pandas as pd

from qra_bench.errors import QRBenchError
from qra_bench.job_inputs import MIN_FULL_TRIALS, surrogate_for, verify_table, work_table
from qra_bench.memory import Budget, MemorySettings, human_bytes as _human
from qra_bench.space import QRConfig
from qra_bench.table1 import Table1Row, baseline_configs, format_table1, measure, pick_beats_uniform, table1_records

if TYPE_CHECKING:  # the search layer imports the surrogate layer: loaded when the job runs
    from qra_bench.search.surrogate_search import SurrogateProblem, TableTrials

__all__ = ["MainJobSpec", "Progress", "run_main_job"]

#: Hyper-parameters of a surrogate fitted on the fly (the estimator's defaults; tests shrink them).
FIT_PARAMS: dict = {}
N_STAGES = 6


# ---------------------------------------------------------------------------------------------------------
# Settings and progress
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MainJobSpec:
    """What ``qra-bench run`` does (paths, budget, trials; ``threads`` is torch CPU threads, None = all cores).

    ``scenario`` names the table, surrogate and budget (default: the headline scenario); ``table``,
    ``surrogate`` and ``budget`` override them one by one (a table given alone is searched at
    ``uniform-4bit``). ``pick_seeds``: seeds the pick is measured at (real trials for the missing ones when
    ``real_evals`` > 0).

    ``out`` is the run's folder (default ``runs/<UTC timestamp>``); ``n_budgets`` the sweep's budgets;
    ``generations`` and ``evals`` override AutoQRA's Stage-1 generations and Stage-2 evaluations, in the
    search and in every budget of the sweep.
    """

    scenario: Optional[str] = None
    table: Optional[str] = None
    surrogate: Optional[str] = None
    budget: Optional[str] = None
    real_evals: int = 3
    pick_seeds: int = 3
    seed: int = 0
    out: Optional[str] = None
    append_to_table: bool = False
    live_baselines: bool = False
    threads: Optional[int] = None
    steps: Optional[int] = None
    n_budgets: int = 12
    min_trials: int = MIN_FULL_TRIALS
    generations: Optional[int] = None
    evals: Optional[int] = None


class Progress:
    """Progress lines on ``stream`` (default stderr), each stamped with seconds since the job started."""

    def __init__(self, stream: Optional[TextIO] = None) -> None:
        self.t0 = time.perf_counter()
        self.stream = stream
        self._stage_t0 = self.t0

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def __call__(self, line: str) -> None:
        print(f"[{self.elapsed:7.1f} s] {line}", file=self.stream or sys.stderr, flush=True)

    def stage(self, k: int, text: str) -> None:
        self._stage_t0 = time.perf_counter()
        self(f"stage {k}/{N_STAGES}: {text}")

    def done(self, text: str = "done") -> None:
        self(f"  {text} ({time.perf_counter() - self._stage_t0:.1f} s)")


# ---------------------------------------------------------------------------------------------------------
# Stage 2: memory of the budget
# ---------------------------------------------------------------------------------------------------------
def memory_lines(budget: str, settings: MemorySettings) -> list[str]:
    """One line per architecture: the budget's bytes for tiny under ``settings`` (the table's convention) and
    for llama-3.1-8b in bf16 with the same layout (how that model is fine-tuned), each split in two."""
    from qra_bench.arch import load_arch
    from qra_bench.memory import MemoryModel

    lines = []
    bf16 = MemorySettings(backend=settings.backend, group_size=settings.group_size)
    for name, arch, s in (("tiny", "tiny", settings), ("llama-3.1-8b (bf16)", "llama-3.1-8b", bf16)):
        mm = MemoryModel(load_arch(arch), s)
        b = mm.budget(budget)
        bd = mm.breakdown(b.reference) if b.reference is not None else None
        times = f"{b.fraction:g} x (" if b.fraction != 1.0 else ""
        split = (
            (
                f" = {times}weights+adapters {_human(bd.weights_and_adapters)} + the rest "
                f"(embeddings, optimizer, activations) {_human(bd.total - bd.weights_and_adapters)}"
                + (")" if times else "")
            )
            if bd
            else ""
        )
        lines.append(f"  {name:<20}{b.bytes:>16,} bytes ({_human(b.bytes)}){split}")
    return lines


# ---------------------------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------------------------
def _noise(frame: pd.DataFrame, metric: str) -> float:
    """Pooled seed-noise std of ``metric`` at full fidelity (NaN without repeats)."""
    from qra_bench.surrogate.evaluate import noise_floor

    full = frame[np.isclose(frame["fidelity_frac"].astype(float), 1.0) & frame[metric].notna()]
    if full.empty:
        return math.nan
    return float(
        noise_floor(full[metric].to_numpy(float), full["config_hash"].to_numpy(str), np.ones(len(full)))["full"]["std"]
    )


def _default_out() -> Path:
    """``runs/<UTC timestamp>``."""
    return Path("runs") / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")


def _sweep_budgets(problem: SurrogateProblem, n: int) -> list[Budget]:
    """``n`` budgets evenly spaced over the memory (budget convention) of the table's configurations."""
    bi, ri, _ = problem.table_configs()
    if len(bi) == 0:
        raise QRBenchError(f"table {problem.table_path} has no configurations on the surrogate's ladders")
    mem = problem.memory_model.total_bytes_batch(bi, ri)
    lo, hi = int(mem.min()), int(mem.max())
    values = np.linspace(lo, hi, max(1, n)) if hi > lo else np.array([lo])
    return [Budget(name=f"{v / 2**20:.2f}MiB", bytes=int(round(v))) for v in values]


def resolve_spec(spec: MainJobSpec) -> MainJobSpec:
    """``spec`` with table, surrogate and budget filled in from its scenario (default: the headline)."""
    from dataclasses import replace

    from qra_bench.scenarios import SCENARIOS, get_scenario

    if spec.table is not None and spec.scenario is None:
        return replace(
            spec,
            surrogate=spec.surrogate
            or str(Path(spec.table).parent.parent / "surrogates" / Path(spec.table).name / "xgb"),
            budget=spec.budget or "uniform-4bit",
        )
    name = spec.scenario or next(s.name for s in SCENARIOS if s.headline)
    sc = get_scenario(name, complete=False)
    return replace(
        spec,
        scenario=sc.name,
        table=spec.table or str(sc.table_path()),
        surrogate=spec.surrogate or str(sc.surrogate_path("xgb")),
        budget=spec.budget or sc.budget,
    )


def run_main_job(spec: MainJobSpec, echo: Callable[[str], None] = print, progress: Optional[Progress] = None) -> Path:
    """Run the six stages of the module docstring; ``echo`` takes the report, ``progress`` the progress lines.

    Returns the run's output folder.
    """
    from qra_bench.search.surrogate_search import load_problem, run_search, search_record, search_settings
    from qra_bench.sweep import SWEEP_SETTINGS, format_sweep, run_sweep, write_sweep

    say = progress or Progress()
    spec = resolve_spec(spec)
    # resolve_spec fills in all three (from the scenario, or defaults for a table given alone)
    assert spec.table is not None and spec.surrogate is not None and spec.budget is not None
    if spec.real_evals < 0:
        raise QRBenchError(f"--real-evals must be >= 0, got {spec.real_evals}")
    if spec.n_budgets < 1:
        raise QRBenchError(f"--budgets must be >= 1, got {spec.n_budgets}")
    # Without --threads: the free cores (affinity minus load), so trials never oversubscribe a shared machine.
    from qra_bench.execution import choose_threads

    if spec.threads:
        threads, thread_note = spec.threads, f"{spec.threads} threads"
    else:
        choice = choose_threads()
        threads, thread_note = choice.threads, choice.describe()

    # 1. table and surrogate ------------------------------------------------------------------------------
    say.stage(1, f"verify the table {spec.table} and the surrogate {spec.surrogate}")
    check = verify_table(spec.table, spec.min_trials)  # before any folder is made: a bad table leaves nothing
    out = Path(spec.out) if spec.out else _default_out()
    out.mkdir(parents=True, exist_ok=True)
    # The snapshot first: a collection may be appending to the table, and the surrogate (shipped or fitted
    # now) is bound to the rows the run actually reads.
    work = work_table(check, out, spec.append_to_table)
    surrogate_path, surrogate_line = surrogate_for(
        Path(spec.surrogate), work, out, say, seed=spec.seed, table_arg=spec.table, params=FIT_PARAMS or None
    )
    problem = load_problem(work, surrogate_path)
    budget = problem.memory_model.budget(spec.budget)
    model_name, task_name = problem.recipe("model_name"), problem.recipe("task_name")
    echo(
        f"qra-bench main job: AutoQRA on {model_name} / {task_name} ({problem.recipe('backend')}), budget "
        f"{budget.name}, {spec.real_evals} real trials, seed {spec.seed}"
    )
    echo(f"table      {check.path}: {check.validated}; {check.n_full_trials} full-fidelity trials; {check.card}")
    if problem.table_hash != check.content_hash:
        echo(
            f"           the table grew while the job started (a collection is appending to it): the run uses the "
            f"snapshot with hash {problem.table_hash[:16]}..."
        )
    echo(f"surrogate  {surrogate_line}")
    echo(
        f"working    real rows go to {work}"
        + (
            " (the shipped table: --append-to-table)"
            if spec.append_to_table
            else " (a copy of the shipped table; the shipped one is untouched)"
        )
    )
    say.done(f"{check.n_full_trials} full-fidelity trials, hash {check.content_hash[:16]}...")

    # 2. memory of the budget -----------------------------------------------------------------------------
    say.stage(2, f"memory at {budget.name}")
    s = problem.memory_model.settings
    echo("")
    ref = budget.reference
    what = (
        (
            (f"{budget.fraction:g} x " if budget.fraction != 1.0 else "")
            + f"every block {ref.bits[0]}-bit, LoRA rank {ref.ranks[0]}; "
        )
        if ref is not None
        else ""
    )
    echo(
        f"memory at {budget.name} ({what}budget convention: memory layout {s.backend}, group {s.group_size}, "
        f"{s.weight_dtype_bytes}-byte weights, batch {s.batch_size} x {s.seq_len} tokens)"
    )
    for line in memory_lines(spec.budget, s):
        echo(line)
    say.done()

    # 3. sweep (surrogate only, before any refit) ---------------------------------------------------------
    budgets = _sweep_budgets(problem, spec.n_budgets)
    say.stage(3, f"budget sweep: {len(budgets)} budgets over the table's memory range, surrogate only")
    sweep = run_sweep(
        problem,
        budgets,
        "autoqra",
        spec.seed,
        settings=search_settings(spec.generations, spec.evals, base=SWEEP_SETTINGS),
    )
    sweep_files = write_sweep(sweep, out)
    echo("")
    echo(format_sweep(sweep))
    say.done(f"{len(budgets)} budgets searched")

    # 4. AutoQRA with real trials -------------------------------------------------------------------------
    say.stage(4, f"AutoQRA at {budget.name} against the surrogate with {spec.real_evals} real trials ({thread_note})")
    outcome, trials = run_search(
        problem,
        spec.budget,
        "autoqra",
        spec.seed,
        spec.real_evals,
        generations=spec.generations,
        evals=spec.evals,
        steps=spec.steps,
        threads=threads,
        progress=say,
    )
    say.done(f"{outcome.n_predictor_rows} surrogate predictions, {outcome.n_real_evals} real trials")

    # 5. baselines and the pick at several seeds ----------------------------------------------------------
    say.stage(5, "the pick at several seeds; baselines: 16-bit LoRA, uniform 4-bit and the best fitting uniform")
    space, metric = problem.space, problem.target
    cfg = outcome.config
    frame = problem.frame  # the table as loaded, before this run's trials
    noise = _noise(frame, metric)
    runners: dict[int, TableTrials] = {spec.seed: trials} if trials else {}
    finals = [r for r in (trials.finals if trials else [])]

    def run_live(c: QRConfig, seed: int) -> None:
        from qra_bench.search.surrogate_search import TableTrials

        runner = runners.get(seed) or TableTrials(problem, seed=seed, steps=spec.steps, threads=threads, progress=say)
        runners[seed] = runner
        runner.planned = None
        runner([c])
        finals.append(runner.finals[-1])

    def measured(label: str, c: QRConfig, fresh_ok: bool) -> Table1Row:
        mine = [f for f in finals if f.config_hash == c.hash]
        table_rows = frame if not mine else pd.concat([frame, pd.DataFrame([m.to_dict() for m in mine])])
        value, se, acc, n = measure(table_rows, c.hash, metric, noise)
        source = (
            (f"mean of {n} seed(s): table" + (f" + {len(mine)} real trial(s) of this run" if mine else ""))
            if n
            else ("not in table (--live-baselines runs it)" if not fresh_ok else "not measured (--real-evals 0)")
        )
        bi, ri = space.bit_index(c), space.rank_index(c)
        mean, std = problem.predict(bi[None], ri[None])
        return Table1Row.of(
            label, c, (value, se, acc, n), problem.memory_model, budget, source, float(mean[0]), float(std[0])
        )

    if spec.real_evals > 0:
        have = {
            int(x)
            for x in frame.loc[
                (frame["config_hash"] == cfg.hash) & np.isclose(frame["fidelity_frac"].astype(float), 1.0), "seed"
            ]
        }
        have |= {int(f.seed) for f in finals if f.config_hash == cfg.hash}
        for seed in [s for s in range(spec.seed, spec.seed + 100) if s not in have][
            : max(0, spec.pick_seeds - len(have))
        ]:
            run_live(cfg, seed)
    baselines = baseline_configs(space, frame, metric, budget.bytes)
    if spec.live_baselines:
        for _, c in baselines:
            if measure(frame, c.hash, metric)[3] == 0:
                run_live(c, spec.seed)
    rows = [measured(label, c, False) for label, c in baselines]
    rows.append(measured("AutoQRA (pick)", cfg, True))
    say.done()

    # 6. report and outputs -------------------------------------------------------------------------------
    say.stage(6, "report")
    where = f"scenario {spec.scenario}, " if spec.scenario else ""
    title = (
        f"Table 1 analogue ({where}{model_name} / {task_name}, table {problem.table_hash[:12]}, surrogate "
        f"{Path(surrogate_path).name}): AutoQRA ({spec.real_evals} real trials) vs uniform baselines; predicted = "
        "the surrogate as loaded, before this run's trials"
    )
    table1 = format_table1(rows, metric, budget.name, budget.bytes, title, task_name)
    uniform_best = next((r for r in rows if r.label.startswith("best fitting uniform")), None)
    beats, why = pick_beats_uniform(rows[-1], uniform_best, problem.sign > 0)
    verdict = f"AutoQRA's pick {'beats' if beats else 'does not beat'} the best fitting uniform configuration: {why}"
    echo("")
    echo(table1)
    echo(verdict)
    refitted = "after refitting on this run's trials " if outcome.n_real_evals else ""
    echo(
        f"AutoQRA's configuration: bits {list(cfg.bits)}, ranks {list(cfg.ranks)} (hash {cfg.hash[:12]}); "
        f"{refitted}the surrogate predicts {problem.target} {outcome.predicted_mean:.4f} ± "
        f"{outcome.predicted_std:.4f}"
    )
    (out / "table1.md").write_text(f"```\n{table1}\n```\n\n{verdict}\n")
    record = search_record(problem, outcome)
    record["table1"] = table1_records(rows)
    record["table1_verdict"] = {"beats_best_fitting_uniform": beats, "why": why}
    (out / "search.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    n_new = sum(r.rows_appended for r in runners.values())
    echo("")
    echo(f"outputs in {out}/:")
    echo(
        f"  table1.md, search.json (the configuration, candidates, memory), "
        f"{', '.join(p.name for p in sweep_files)} (the sweep)"
    )
    if surrogate_path == out / "surrogate":
        echo("  surrogate/ (fitted on the fly: no surrogate was shipped)")
    if spec.append_to_table:
        echo(
            f"  {n_new} new rows appended to the shipped table {work}: regenerate its card "
            f"(`qra-bench table report {work}`) and refit the surrogate (`qra-bench fit --table {work} "
            f"--target eval_loss --out {spec.surrogate}`)"
            if n_new
            else "  no rows appended to the shipped table"
        )
    else:
        echo(f"  table/ (the shipped table's rows + {n_new} rows of this run's trials; the shipped table is unchanged)")
    echo(f"wall {say.elapsed:.1f} s")
    say.done()
    return out
