"""Scenarios: the named benchmark problems qra-bench ships.

A scenario fixes a base model, a task, the main metric, a memory budget, a results table (named, and pinned
by its content hash once complete), the surrogates bound to that table and a difficulty card generated from
the table (:mod:`qra_bench.difficulty`), and optionally a *sample*: a design of configurations drawn without
looking at any measurement, on which the card estimates random search's evaluations to target (a table's own
configurations crowd near the optimum). Exactly one is the headline: what ``make run`` and the reported
results use.

Files are found under the data root (:mod:`qra_bench.data`): the table ``tables/<table>``, surrogates
``surrogates/<table>/<kind>`` and the card ``scenarios/<name>.md`` beside ``tables/``.

A scenario is *complete* when its table is present, every surrogate it names is fitted on exactly that table
(the manifest's content hash equals the table's), and its card is written; only complete scenarios are
listed and offered to :meth:`qra_bench.harness.Benchmark.load`. Tables kept only for experiments live apart
(under ``experiments/tables/``) and are never scenarios.

Nothing here imports torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from qra_bench.data import surrogate_dir, table_location, tables_dir
from qra_bench.errors import QRBenchError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SCENARIOS",
    "Scenario",
    "default_budget",
    "get_scenario",
    "list_scenarios",
    "scenario_for",
    "scenario_record",
    "write_card",
]

SURROGATE_KINDS = ("xgb", "gp")


_CACHE: dict = {}


def _snapshot(path: Path) -> tuple[str, pd.DataFrame]:
    """``(content hash, ok rows)`` of the table at ``path``, read once per process while its parts are unchanged."""
    from qra_bench.table import ResultsTable

    table = ResultsTable(path)
    parts = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in table.part_paths())
    key = ("snapshot", str(path), parts)
    if key not in _CACHE:
        _CACHE[key] = (table.content_hash(), table.read())
    return _CACHE[key]


def _bench(s: "Scenario", root: Optional[Path]):
    """The table backend of the scenario's benchmark (its memory model and budget), once per table state."""
    from qra_bench.harness.benchmark import Benchmark

    content_hash, _ = _snapshot(s.table_path(root))
    key = ("bench", str(s.table_path(root)), content_hash, s.budget, s.metric)
    if key not in _CACHE:
        _CACHE[key] = Benchmark.load(s.table_path(root), backend="table", budget=s.budget, metric=s.metric)
    return _CACHE[key]


@dataclass(frozen=True)
class Scenario:
    """A named benchmark problem (see the module docstring); ``budget`` is a budget name of the memory model."""

    name: str
    model: str
    task: str
    metric: str
    budget: str
    table: str
    summary: str
    headline: bool = False
    surrogates: tuple[str, ...] = SURROGATE_KINDS
    sample: Optional[str] = None
    sample_summary: str = ""

    # -- where its files are -------------------------------------------------------------------------------
    def table_path(self, root: Optional[Path] = None) -> Path:
        return table_location(self.table, root)

    def surrogate_path(self, kind: str, root: Optional[Path] = None) -> Path:
        return surrogate_dir(self.table, kind, root)

    def card_path(self, root: Optional[Path] = None) -> Path:
        return tables_dir(root).parent / "scenarios" / f"{self.name}.md"

    def sample_path(self, root: Optional[Path] = None) -> Optional[Path]:
        return None if self.sample is None else tables_dir(root).parent / "scenarios" / self.sample

    def sample_hashes(self, root: Optional[Path] = None) -> Optional[set[str]]:
        """The configuration hashes of the scenario's sample design (``None`` when it has none)."""
        from qra_bench.space import QRConfig

        path = self.sample_path(root)
        if path is None:
            return None
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return {QRConfig(tuple(r["bits"]), tuple(r["ranks"])).hash for r in rows}

    def problems(self, root: Optional[Path] = None) -> list[str]:
        """Why the scenario is not complete (empty when it is)."""
        from qra_bench.table import ResultsTable

        table = ResultsTable(self.table_path(root))
        if not table.exists or not table.part_paths():
            return [f"no table at {self.table_path(root)}"]
        problems = []
        content_hash, _ = _snapshot(self.table_path(root))
        for kind in self.surrogates:
            manifest = self.surrogate_path(kind, root) / "manifest.json"
            if not manifest.is_file():
                problems.append(f"no {kind} surrogate at {manifest.parent}")
                continue
            bound = json.loads(manifest.read_text()).get("table", {}).get("content_hash")
            if bound != content_hash:
                problems.append(
                    f"{kind} surrogate fitted on table hash {str(bound)[:12]}, the table is now {content_hash[:12]}"
                )
        if not self.card_path(root).is_file():
            problems.append(f"no card at {self.card_path(root)}")
        sample = self.sample_path(root)
        if sample is not None and not sample.is_file():
            problems.append(f"no sample design at {sample}")
        return problems


#: The real-LLM scenario's fine-tuning task (its table's rows record it, with the lm-eval tasks and limit).
SMOLLM2_SFT = "sft:news-alpaca?n=96&eval_n=16&max_len=128"

#: The shipped scenarios, headline first.
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="tiny-cipher",
        model="tiny",
        task="cipher",
        metric="eval_loss",
        budget="0.81xfp16-lora",
        table="tiny-cipher",
        headline=True,
        summary="81 % of 16-bit LoRA's training memory, between uniform 8-bit r8 and uniform 3-bit r16: mixed "
        "configurations pay for rank 16 where it matters with fewer bits where they cost little",
        sample="tiny-cipher-band.jsonl",
        sample_summary="320 mixed configurations drawn uniformly, seed 0, among those that fit the budget in the top "
        "quarter of the memory range it admits: a random search confined to the band where the best lie",
    ),
    Scenario(
        name="tiny-news",
        model="tiny",
        task="news",
        metric="eval_loss",
        budget="uniform-4bit",
        table="tiny-news",
        summary="the memory of uniform 4-bit r16; flat at the top: uniform 8-bit r8 ties the best mixed "
        "configuration within seed noise",
    ),
    Scenario(
        name="smollm2-sft",
        model="smollm2-135m",
        task=SMOLLM2_SFT,
        metric="accuracy",
        budget="uniform-4bit",
        table="smollm2-sft",
        summary="the paper's protocol at CPU scale: SmolLM2-135M-Instruct (30 blocks) fine-tuned on the shipped "
        "Alpaca-format news instructions and scored by lm-eval on the three shipped multiple-choice tasks (their "
        "mean accuracy), at the memory of uniform 4-bit r16",
    ),
)


def _all(root: Optional[Path] = None) -> tuple[Scenario, ...]:
    return SCENARIOS


def list_scenarios(complete_only: bool = True, root: Optional[Path] = None) -> list[Scenario]:
    """The shipped scenarios (only the complete ones unless ``complete_only`` is False)."""
    return [s for s in _all(root) if not complete_only or not s.problems(root)]


def get_scenario(name: str, root: Optional[Path] = None, complete: bool = True) -> Scenario:
    """The scenario called ``name``; a :class:`QRBenchError` naming the available ones otherwise."""
    for s in _all(root):
        if s.name == name:
            if complete and (problems := s.problems(root)):
                raise QRBenchError(f"scenario {name!r} is not complete: {'; '.join(problems)}")
            return s
    names = [s.name for s in list_scenarios(root=root)]
    raise QRBenchError(f"unknown scenario {name!r}; available: {', '.join(names) if names else 'none'}")


def scenario_for(name_or_path: object) -> Optional[Scenario]:
    """The shipped scenario called ``name_or_path``, or None (an existing path is never a scenario name)."""
    if Path(str(name_or_path)).exists():
        return None
    return next((s for s in SCENARIOS if s.name == str(name_or_path)), None)


def default_budget(name_or_path: object) -> str:
    """The budget a benchmark opens at when none is given: its scenario's, else ``uniform-4bit``."""
    s = scenario_for(name_or_path)
    return s.budget if s is not None else "uniform-4bit"


def scenario_record(s: Scenario, root: Optional[Path] = None) -> dict:
    """The JSON item ``qra-bench scenarios --json`` prints for ``s`` (budget bytes from the table's memory model)."""
    from qra_bench.table import ResultsTable

    table = ResultsTable(s.table_path(root))
    budget_bytes = n_trials = content_hash = None
    if table.exists and table.part_paths():
        content_hash, frame = _snapshot(s.table_path(root))
        budget_bytes = int(_bench(s, root).budget.bytes)
        full = frame[frame["fidelity_frac"].astype(float) == 1.0]
        n_trials = int(full.groupby(["config_hash", "seed"]).ngroups)
    problems = s.problems(root)
    return {
        "name": s.name,
        "model": s.model,
        "task": s.task,
        "metric": s.metric,
        "budget": s.budget,
        "budget_bytes": budget_bytes,
        "table": str(s.table_path(root)),
        "table_hash": content_hash,
        "full_fidelity_trials": n_trials,
        "surrogates": {k: str(s.surrogate_path(k, root)) for k in s.surrogates},
        "card": str(s.card_path(root)),
        "sample": None if s.sample_path(root) is None else str(s.sample_path(root)),
        "headline": s.headline,
        "complete": not problems,
        "problems": problems,
        "summary": s.summary,
    }


# ---------------------------------------------------------------------------------------------------------
# The card
# ---------------------------------------------------------------------------------------------------------
def compute_scenario_card(s: Scenario, root: Optional[Path] = None, n_curve: int = 12):
    """The :class:`~qra_bench.difficulty.DifficultyCard` of ``s`` from its table and saved surrogates."""
    import numpy as np
    import pandas as pd

    from qra_bench.difficulty import compute_card

    bench = _bench(s, root)
    mm, space = bench.memory_model, bench.space
    smallest = int(mm.total_bytes(space.uniform(min(space.bits), min(space.ranks)))) + int(bench.memory_offset)
    fp16 = int(mm.budget("fp16-lora").bytes) + int(bench.memory_offset)
    curve = [(f"{b / fp16:.3f}xfp16-lora", int(b)) for b in np.linspace(smallest, fp16, n_curve)]
    predictions = {}
    for kind in s.surrogates:
        csv = s.surrogate_path(kind, root) / "predictions.csv"
        if csv.is_file():
            predictions[kind] = pd.read_csv(csv)
    n_anchors = len(space.bits) * len(space.ranks)
    _, frame = _snapshot(s.table_path(root))
    card = compute_card(
        frame,
        s.metric,
        s.budget,
        int(bench.budget.bytes),
        smallest,
        curve,
        predictions,
        n_uniform_anchors=n_anchors,
        sample=s.sample_hashes(root),
        sample_name=s.sample_summary or str(s.sample),
    )
    return card, bench


def _f(x: Optional[float], digits: int = 4) -> str:
    return "-" if x is None or not math.isfinite(float(x)) else f"{x:.{digits}f}"


def _random_evals_text(card) -> str:
    """Random search's expected evaluations to target in words: ``"more than N"`` when none of the N sampled
    configurations reaches the target (the estimate ``N + 1`` is then a lower bound)."""
    n, k = card.sample_fitting, card.sample_within
    return f"{card.random_evals_to_target:.0f}" if k else f"more than {n}"


def _verdict(card) -> str:
    """One sentence on what the figures say, from fixed thresholds (10 x noise and 20 evaluations; 2 x noise)."""
    adv, evals = card.advantage_noise, card.random_evals_to_target
    if not math.isfinite(adv):
        return "not yet measurable: the best uniform or the best mixed configuration lacks 3 seeds."
    if adv < 2.0:
        return (
            f"the top is flat: the best mixed configuration is within {adv:.1f} x noise of the best uniform one "
            "that fits, so a search has little to find here and figures measured on this scenario say little."
        )
    if adv >= 10.0 and evals >= 20.0:
        return (
            f"mixed allocation matters: it beats the best fitting uniform configuration by {adv:.1f} x noise, and "
            f"random search needs {_random_evals_text(card)} evaluations in expectation to come within 2 x noise of "
            "the best."
        )
    return (
        f"mixed allocation helps ({adv:.1f} x noise over the best fitting uniform configuration), short of the "
        "headline bar (>= 10 x noise and >= 20 evaluations for random search)."
    )


def _random_line(card) -> str:
    """Random search's expected evaluations to target, and the sample they are estimated on."""
    n, k = card.sample_fitting, card.sample_within
    evals = f"**{_f(card.random_evals_to_target, 1)}**" if k else f"**{_random_evals_text(card)}** (no hit among {n})"
    if not card.sample_name:
        return (
            f"- random search needs {evals} evaluations to target in expectation, estimated on the table's fitting "
            "configurations (a designed sample that searches enrich near the optimum, so this favours random search)"
        )
    return (
        f"- random search needs {evals} evaluations to target in expectation, estimated on the sample "
        f"({card.sample_name}), whose {n} measured fitting configurations include {k} within the target"
    )


def format_card(s: Scenario, card, table_hash: str, command: str) -> str:
    """The card as Markdown."""
    mib = 2**20
    better = "higher" if card.higher_is_better else "lower"
    lines = [
        f"# Scenario `{s.name}`{' (headline)' if s.headline else ''}",
        "",
        f"{s.model} / {s.task}, metric `{s.metric}` ({better} is better), budget `{s.budget}` = "
        f"{card.budget_bytes:,} bytes ({card.budget_bytes / mib:.2f} MiB): {s.summary}.",
        "",
        f"Table `{s.table}`, content hash `{table_hash}`. Regenerate this card: `{command}`.",
        "",
        "## Difficulty",
        "",
        f"- seed noise (pooled std of repeats): **{_f(card.noise_std)}** from {card.noise_configs} configurations "
        "with >= 2 seeds",
        f"- configurations measured that fit the budget: {card.n_fitting}",
    ]
    for label, c in (
        ("best uniform configuration that fits", card.best_uniform),
        ("best mixed configuration that fits", card.best_mixed),
    ):
        if c is None:
            lines.append(f"- {label}: none measured at >= {card.bar.min_seeds} seeds yet")
        else:
            lines.append(
                f"- {label} (>= {card.bar.min_seeds} seeds): {c.label}, **{_f(c.mean)} +- {_f(c.se)}** "
                f"(mean +- SE over {c.n_seeds} seeds; {c.memory_bytes / mib:.2f} MiB)"
            )
    lines += [
        f"- mixed advantage: **{_f(card.advantage)}** = **{_f(card.advantage_noise, 1)} x noise** "
        f"({_f(card.advantage_se, 1)} standard errors of the difference)",
        f"- target = best known mean {'-' if card.higher_is_better else '+'} {_f(card.tolerance)} (2 x noise) = "
        f"{_f(card.target)}; {card.n_within} of the table's {card.n_fitting} fitting configurations "
        f"({100 * card.frac_within:.1f} %) reach it",
        _random_line(card),
        "",
    ]
    lines += [f"**Verdict:** {_verdict(card)}", ""]
    if card.surrogate_tau:
        lines += [
            "| surrogate | configurations | Kendall tau (fitting) | noise allows | tau (top decile) | noise allows |",
            "|---|---|---|---|---|---|",
        ]
        for kind, t in card.surrogate_tau.items():
            a, d = t.get("all", {}), t.get("top_decile", {})
            lines.append(
                f"| {kind} | {t.get('n_configs', 0)} | {_f(a.get('tau'), 3)} | {_f(a.get('ceiling'), 3)} | "
                f"{_f(d.get('tau'), 3)} | {_f(d.get('ceiling'), 3)} |"
            )
        lines += [
            "",
            "Out-of-fold predictions (5 folds of whole configurations) saved with each surrogate, averaged "
            "per configuration at full fidelity; 'noise allows' is the tau a predictor knowing every true mean "
            "would reach against these noisy means.",
            "",
        ]
    lines += [
        "## Mixed advantage over budgets",
        "",
        "Best uniform vs best mixed configuration that fits each budget, by mean over whatever seeds each has "
        "(the best of many single-seed means is biased toward luck; the headline figure above uses >= 3 seeds).",
        "",
        "| budget | MiB | fitting | best uniform | its mean | best mixed mean (seeds) | advantage (x noise) |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in card.curve:
        lines.append(
            f"| {p['budget']} | {p['budget_bytes'] / mib:.2f} | {p['n_fitting']} | {p['best_uniform'] or '-'} | "
            f"{_f(p['best_uniform_mean'])} | {_f(p['best_mixed_mean'])} ({p['best_mixed_seeds'] or '-'}) | "
            f"{_f(p['advantage_noise'], 1)} |"
        )
    b = card.bar
    if not s.headline:
        return "\n".join(lines + [""])
    lines += [
        "",
        "## Collection bar (headline)",
        "",
        f"- full-fidelity trials: {b.full_trials} (bar {b.min_full_trials}); fidelities per trial: "
        f"{b.fidelities_per_trial} (bar 3)",
        f"- fitting configurations in the top quarter of the admitted memory range: {b.band_configs} "
        f"(bar {b.min_band_configs})",
        f"- uniform anchors at >= {b.min_seeds} seeds: {b.anchors_at_min_seeds} of {b.n_anchors}; the "
        f"{b.n_best} best fitting configurations at >= {b.min_seeds} seeds: {b.best_at_min_seeds}",
        f"- bar met: **{'yes' if b.met else 'no'}**",
        "",
    ]
    return "\n".join(lines)


def write_card(s: Scenario, root: Optional[Path] = None) -> Path:
    """Compute ``s``'s card from its table and surrogates and write it to :meth:`Scenario.card_path`."""
    card, bench = compute_scenario_card(s, root)
    text = format_card(s, card, bench.content_hash, f"qra-bench scenarios --card {s.name} --write")
    path = s.card_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
