"""The paper's claims, regenerated from a results table (and a surrogate where a claim needs one).

Each claim writes ``<out>/claim_<name>.md`` (our numbers beside the paper's, a one-line verdict, the table's
path and content hash, the surrogate's path and manifest hash) with a ``.json`` of the same numbers and,
where it helps, a PNG. Verdicts are ``supported``, ``not supported`` or ``not testable yet: <why>``; a table
too small for a claim gets the last one, never a crash.

Claims (the paper's numbers as summarized from secondary sources; ``docs/method.md`` describes the method):

- ``table1``: methods x (eval_loss, accuracy, average bits and rank, memory) at the uniform-4bit budget.
- ``spread``: spread of the configurations within one budget against the seed noise.
- ``proxy``: correlation of static proxies (before fine-tuning) with the fine-tuned eval_loss.
- ``compensation``: does a higher rank recover quality at low bits (bits x rank grid, interaction fit).
- ``screening``: out-of-fold surrogate screening hit rate of the true top 10 % (needs ``--surrogate``).
- ``evals_to_target``: evaluations to come within a tolerance of the best known, AutoQRA vs random vs SMAC3
  (surrogate backend of the benchmark; needs ``--surrogate``).
- ``ablations``: bits-only and rank-only AutoQRA vs full AutoQRA (surrogate-predicted; needs ``--surrogate``).

Main metric: ``eval_loss`` (nats per token, lower is better) on full-fidelity rows (``fidelity_frac == 1``);
``accuracy`` beside it. Surrogate claims use the surrogate's target. Seed noise is the pooled std over the
configurations with >= 2 seeds; "2 SE" below is ``2 * noise * sqrt(1/n1 + 1/n2)`` for means of n1 and n2 seeds.

Verdict rules (fixed in the code, the same for every table):

- table1: AutoQRA's pick, measured, beats QLoRA-style by more than 2 SE and is not worse than 16-bit LoRA by more
  than 2 SE.
- spread: accuracy max - min within the budget exceeds 25 points (the paper's words); the weaker form, spread above
  seed noise, is reported beside it.
- proxy: the strongest static proxy has |Spearman| <= 0.7 with the fine-tuned eval_loss over all configurations.
- compensation: on the uniform anchors, the rank x log2-bits interaction is positive with t >= 2 and rank lowers
  the loss at the lowest bit width.
- screening: the surrogate's out-of-fold top 20 % holds more of the true top 10 % than random screening, with a
  hypergeometric p < 0.05.
- evals_to_target: AutoQRA's median evaluations to target are below random search's, paired Wilcoxon p < 0.05.
- ablations: full AutoQRA beats both the bits-only and the rank-only search by more than one seed-noise std.

    .venv/bin/python experiments/claims.py --claim all --table datasets_cache/tables/tiny-news \\
        --surrogate surrogates/tiny-news/xgb-eval_loss
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd

from qra_bench.defaults import DEFAULT_TABLE

RESULTS = Path(__file__).resolve().parent / "results"
BUDGET_NAME = "uniform-4bit"
VERDICTS = ("supported", "not supported", "not testable yet")
SEARCH_OPTIMIZERS = ("autoqra", "random", "smac-hpo")  # AutoQRA, random search, SMAC3 alone
SCREENED = "autoqra+screen"  # AutoQRA screening with a surrogate of the low-fidelity rows

# The paper's numbers, word for word as summarized from secondary sources.
PAPER = {
    "table1": ("LLaMA-3.1-8B, average accuracy over seven commonsense tasks (s): LoRA fp16 69.94 (16 bits, rank 16, "
               "20.50 GB); QLoRA 4-bit 67.45 (4 bits, rank 16, 15.22 GB); AutoQRA at a 4-bit budget 69.83 (3.75 "
               "average bits, 10.5 average rank, 13.08 GB); AutoQRA best 70.45 (5.25 bits, 12.25 rank, 17.32 GB). "
               "Memory there is measured peak training memory."),
    "spread": "(1) at one memory budget, configurations differ by more than 25 accuracy points",
    "proxy": ("(2) static proxies (perplexity, reconstruction error before fine-tuning) correlate only about "
              "rho = 0.46 with fine-tuned accuracy"),
    "compensation": ("(3) found configurations pair low bits with high rank (bits and rank negatively correlated: "
                     "\"compensation\")"),
    "screening": "(4) surrogate screening raises top-3 hit rate from 44.7% to 67.3%",
    "evals_to_target": "(5) AutoQRA reaches the target with 6 high-fidelity evaluations where random search needs 107",
    "ablations": ("(6) removing the warm start, either stage, the surrogate, or searching bits only / ranks only, "
                  "each hurts"),
}
TITLES = {
    "table1": "Table 1 analogue at the uniform-4bit budget",
    "spread": "Spread of configurations within one budget",
    "proxy": "Static proxies before fine-tuning vs the fine-tuned result",
    "compensation": "Bit-rank compensation",
    "screening": "Surrogate screening hit rate",
    "evals_to_target": "Evaluations to reach the best known configuration",
    "ablations": "Bits-only and rank-only AutoQRA",
}
PROXIES = ("proxy_eval_loss", "proxy_lm_loss", "proxy_recon_error")


class NotTestable(Exception):
    """A claim the data cannot decide yet; ``body`` keeps what was computed before the gap showed."""

    def __init__(self, reason: str, body: Optional[list[str]] = None, numbers: Optional[dict] = None) -> None:
        super().__init__(reason)
        self.reason, self.body, self.numbers = reason, body or [], numbers or {}


@dataclass
class Claim:
    """One claim's outcome: the verdict line, the Markdown body, the numbers (JSON) and the plot written."""

    name: str
    verdict: str
    body: list[str]
    numbers: dict = field(default_factory=dict)
    plot: Optional[str] = None


# ---------------------------------------------------------------------------------------------------------
# Inputs: the table, its per-configuration means, the noise floor, the budget, the surrogate
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Options:
    tolerance: float = 0.01
    max_evals: int = 100
    seeds: tuple[int, ...] = tuple(range(10))
    ablation_seeds: tuple[int, ...] = tuple(range(5))
    generations: Optional[int] = None
    stage2_evals: Optional[int] = None
    allow_hash_mismatch: bool = False
    repick: bool = False  # table1: search for a new pick even if one is recorded


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _uniform(values: tuple) -> Optional[int]:
    return int(values[0]) if len(set(values)) == 1 else None


class Context:
    """Everything the claims read, loaded once: rows, per-configuration means, noise, budget, surrogate."""

    def __init__(self, table: str, surrogate: Optional[str], options: Options) -> None:
        from qra_bench.errors import QRBenchError
        from qra_bench.table import ResultsTable

        self.table_path, self.options = str(table), options
        results = ResultsTable(table)
        if not results.exists:
            raise QRBenchError(f"no table at {table}")
        self.rows = results.read()
        self.table_hash = results.content_hash()
        frac = self.rows["fidelity_frac"].astype(float)
        self.full = self.rows[np.isclose(frac, 1.0)].reset_index(drop=True)
        self.configs = _per_config(self.full)
        self.surrogate_path = surrogate
        self._cache: dict[Any, Any] = {}

    # -- noise -------------------------------------------------------------------------------------------------
    def noise(self, metric: str) -> tuple[float, int]:
        """Pooled seed-noise std of ``metric`` at full fidelity and the number of repeated configurations."""
        from qra_bench.surrogate.evaluate import noise_floor

        f = self.full[np.isfinite(self.full[metric].astype(float))]
        if f.empty:
            return math.nan, 0
        nf = noise_floor(f[metric].to_numpy(float), f["config_hash"].to_numpy(str), f["fidelity_frac"].to_numpy(float))
        return nf["full"]["std"], nf["full"]["n_groups"]

    # -- budget ------------------------------------------------------------------------------------------------
    def budget(self) -> tuple[int, str]:
        """(bytes, how it was obtained): the uniform 4-bit rank-16 row's recorded memory, else the table's model."""
        if "budget" not in self._cache:
            row = self.uniform_row(4, 16)
            if row is not None and math.isfinite(row["mem"]):
                self._cache["budget"] = (int(row["mem"]), "mem_predicted_bytes of the uniform 4-bit rank-16 row")
            else:
                bench = self.bench()
                self._cache["budget"] = (bench.budget.bytes, "the table's memory model rebuilt by Benchmark.load "
                                         "(uniform-4bit; the table has no uniform 4-bit rank-16 row yet)")
        return self._cache["budget"]

    def uniform_row(self, bits: int, rank: int) -> Optional[pd.Series]:
        sel = self.configs[(self.configs["ubits"] == bits) & (self.configs["urank"] == rank)]
        return None if sel.empty else sel.iloc[0]

    def within_budget(self) -> pd.DataFrame:
        b, _ = self.budget()
        c = self.configs
        return c[np.isfinite(c["mem"]) & (c["mem"] <= b)]

    # -- benchmark and surrogate ---------------------------------------------------------------------------
    def bench(self, metric: Optional[str] = None):
        """The table backend of :class:`~qra_bench.bench.Benchmark` (memory model matching the table)."""
        from qra_bench.bench import METRICS, Benchmark

        metric = metric or (self.artifact().target if self.surrogate_path and self._artifact_or_none() else "eval_loss")
        metric = metric if metric in METRICS else "eval_loss"
        key = ("bench", metric)
        if key not in self._cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._cache[key] = Benchmark.load(self.table_path, backend="table", budget=BUDGET_NAME, metric=metric)
        return self._cache[key]

    def _artifact_or_none(self):
        try:
            return self.artifact()
        except NotTestable:
            return None

    def artifact(self):
        """The surrogate artifact, or :class:`NotTestable` saying why there is none usable."""
        from qra_bench.errors import QRBenchError
        from qra_bench.surrogate import SurrogateArtifact

        if "artifact" not in self._cache:
            if not self.surrogate_path:
                self._cache["artifact"] = NotTestable("needs a surrogate (--surrogate; fit one with `qra-bench fit "
                                                      f"--table {self.table_path} --target eval_loss`)")
            else:
                try:
                    art = SurrogateArtifact.load(self.surrogate_path, table_path=self.table_path,
                                                 allow_hash_mismatch=True)
                    if art.multi_fidelity:
                        raise QRBenchError(f"surrogate {self.surrogate_path} is multi-fidelity; the claims need one "
                                           "fitted with --fidelity all or full")
                    if art.table_hash != self.table_hash and not self.options.allow_hash_mismatch:
                        raise QRBenchError(
                            f"surrogate {self.surrogate_path} was fitted on table hash {art.table_hash[:16]}, the "
                            f"table is now {self.table_hash[:16]}: refit it, or pass --allow-hash-mismatch")
                    self._cache["artifact"] = art
                except QRBenchError as exc:
                    self._cache["artifact"] = NotTestable(str(exc))
        value = self._cache["artifact"]
        if isinstance(value, NotTestable):
            raise NotTestable(value.reason)
        return value

    def sign(self) -> float:
        return 1.0 if self.artifact().higher_is_better else -1.0

    def search_problem(self):
        """(space, memory model, budget, priors, predictor) for a search against the surrogate at the budget."""
        from qra_bench.memory import Budget, MemoryModel
        from qra_bench.search.base import Priors, as_priors

        if "problem" not in self._cache:
            art = self.artifact()
            bench = self.bench(art.target)
            mm = MemoryModel(bench.memory_model.arch, bench.memory_model.settings, art.space)
            budget = Budget(name=BUDGET_NAME, bytes=self.budget()[0])
            iq, ir = art.encoder_spec.importance_q, art.encoder_spec.importance_r
            priors = as_priors(Priors(importance_q=iq, importance_r=ir), art.space.n_blocks) \
                if iq and any(iq + ir) else None
            sign = self.sign()

            def predictor(bit_idx: np.ndarray, rank_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                mean, std = art.predict_indices(np.atleast_2d(bit_idx), np.atleast_2d(rank_idx), 1.0)
                return sign * np.asarray(mean, float), np.asarray(std, float)

            self._cache["problem"] = (art.space, mm, budget, priors, predictor)
        return self._cache["problem"]

    def autoqra(self, seed: int, axes: str = "both"):
        """AutoQRA's predictor-only search (both stages against the surrogate) at the budget; cached."""
        from qra_bench.search import autoqra_search
        from qra_bench.search.surrogate_search import search_settings

        key = ("autoqra", seed, axes)
        if key not in self._cache:
            space, mm, budget, priors, predictor = self.search_problem()
            settings = search_settings(self.options.generations, self.options.stage2_evals)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # ConfigSpace's, from inside SMAC3
                self._cache[key] = autoqra_search(space, mm, budget, predictor, priors, seed=seed, settings=settings,
                                                  axes=axes)
        return self._cache[key]

    # -- provenance --------------------------------------------------------------------------------------------
    def source_lines(self, uses_surrogate: bool) -> list[str]:
        n_cfg = len(self.configs)
        seeds = sorted(int(s) for s in self.rows["seed"].unique()) if len(self.rows) else []
        lines = ["## Source", "",
                 f"- table: `{self.table_path}`, content hash `{self.table_hash}` ({len(self.rows)} ok rows; "
                 f"{len(self.full)} at full fidelity, {n_cfg} configurations, seeds {_seed_text(seeds)})"]
        if uses_surrogate:
            if not self.surrogate_path:
                lines.append("- surrogate: none given")
            else:
                manifest = Path(self.surrogate_path) / "manifest.json"
                if manifest.is_file():
                    m = json.loads(manifest.read_text())
                    bound = m.get("table", {}).get("content_hash", "?")
                    state = "matches the table" if bound == self.table_hash else \
                        f"MISMATCH: fitted on table hash `{bound}`"
                    lines.append(f"- surrogate: `{self.surrogate_path}`, manifest sha256 `{_sha256_file(manifest)}`, "
                                 f"{m.get('model', {}).get('kind', '?')} of {m.get('target', {}).get('name', '?')} "
                                 f"({m.get('fidelity', {}).get('mode', '?')} fidelities), {state}")
                else:
                    lines.append(f"- surrogate: `{self.surrogate_path}` (no manifest.json there)")
        return lines

    def command(self, name: str, uses_surrogate: bool, out: Path) -> str:
        cmd = f".venv/bin/python experiments/claims.py --claim {name} --table {self.table_path}"
        if uses_surrogate and self.surrogate_path:
            cmd += f" --surrogate {self.surrogate_path}"
            o, d = self.options, Options()
            if o.allow_hash_mismatch:
                cmd += " --allow-hash-mismatch"
            if o.generations is not None:
                cmd += f" --generations {o.generations}"
            if o.stage2_evals is not None:
                cmd += f" --stage2-evals {o.stage2_evals}"
            if name == "evals_to_target":
                if o.seeds != d.seeds:
                    cmd += f" --seeds {','.join(map(str, o.seeds))}"
                if o.max_evals != d.max_evals:
                    cmd += f" --max-evals {o.max_evals}"
                if o.tolerance != d.tolerance:
                    cmd += f" --tolerance {o.tolerance:g}"
            if name == "ablations" and o.ablation_seeds != d.ablation_seeds:
                cmd += f" --ablation-seeds {','.join(map(str, o.ablation_seeds))}"
        if out.resolve() != RESULTS:
            cmd += f" --out {out}"
        return cmd


def _seed_text(seeds: list[int]) -> str:
    if not seeds:
        return "none"
    return ", ".join(map(str, seeds)) if len(seeds) <= 10 else f"{seeds[0]}..{seeds[-1]} ({len(seeds)})"


def _per_config(full: pd.DataFrame) -> pd.DataFrame:
    """Full-fidelity rows averaged over seeds: one row per configuration (NaN-safe, nullable ints as floats)."""
    cols = ["eval_loss", "accuracy", "proxy_accuracy", *PROXIES, "mem_predicted_bytes", "avg_bits", "avg_rank"]
    empty = pd.DataFrame(columns=["config_hash", "bits", "ranks", "n_seeds", "mem", "ubits", "urank", "uniform",
                                  *cols, "eval_loss_std", "accuracy_std"])
    if full.empty:
        return empty
    f = full[["config_hash", "bits", "ranks", "seed"]].copy()
    for c in cols:
        f[c] = pd.to_numeric(full[c], errors="coerce").astype(float)
    g = f.groupby("config_hash", sort=True)
    out = g[cols].mean()
    out["eval_loss_std"] = g["eval_loss"].std()
    out["accuracy_std"] = g["accuracy"].std()
    out["n_seeds"] = g["seed"].nunique()
    out["bits"] = g["bits"].first()
    out["ranks"] = g["ranks"].first()
    out = out.reset_index()
    out["mem"] = out["mem_predicted_bytes"]
    ubits = [_uniform(b) for b in out["bits"]]
    urank = [_uniform(r) for r in out["ranks"]]
    out["uniform"] = [b is not None and r is not None for b, r in zip(ubits, urank)]
    # Mixed configurations get 0 (no bit width or rank is 0 on a uniform anchor's ladder), keeping ints.
    out["ubits"] = [b or 0 for b in ubits]
    out["urank"] = [r or 0 for r in urank]
    return out


# ---------------------------------------------------------------------------------------------------------
# Formatting helpers
# ---------------------------------------------------------------------------------------------------------
def _f(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.{digits}f}"


def _pm(mean: float, std: float, n: int, digits: int = 4) -> str:
    if not math.isfinite(mean):
        return "—"
    s = f"{mean:.{digits}f}"
    if n >= 2 and math.isfinite(std):
        s += f" ± {std:.{digits}f}"
    return s + (f" (n={n})" if n > 0 else " (predicted)")


def _mib(b: float) -> str:
    return "—" if b is None or not math.isfinite(b) else f"{b / 2**20:.2f} MiB"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path, name: str) -> str:
    path = out / f"claim_{name}.png"
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    _pyplot().close(fig)
    return path.name


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _margin(sigma: float, n1: int, n2: int) -> float:
    """Two standard errors of a difference of two means of n1 and n2 seeds with seed-noise std ``sigma``."""
    return 2.0 * sigma * math.sqrt(1.0 / max(n1, 1) + 1.0 / max(n2, 1))


# ---------------------------------------------------------------------------------------------------------
# 1. Table 1
# ---------------------------------------------------------------------------------------------------------
def claim_table1(ctx: Context, out: Path) -> Claim:
    if ctx.configs.empty:
        raise NotTestable("the table has no full-fidelity rows")
    budget, how = ctx.budget()
    sigma, n_rep = ctx.noise("eval_loss")
    body = [f"Budget `{BUDGET_NAME}`: {budget:,} bytes ({_mib(budget)}), {how}. Memory below is each row's "
            "`mem_predicted_bytes` (the memory model's total training memory), not measured peak memory.", ""]
    methods: list[tuple[str, Optional[pd.Series], str]] = []
    none4 = ("—", "—", "—", "—")
    autoqra_paper = ("69.83", "3.75", "10.5", "13.08 GB")
    for label, bits, paper in (("QLoRA-style: uniform 4-bit, rank 16", 4, ("67.45", "4", "16", "15.22 GB")),
                               ("uniform 3-bit, rank 16", 3, none4),
                               ("uniform 8-bit, rank 16", 8, none4),
                               ("16-bit LoRA, rank 16 (upper bound)", 16, ("69.94", "16", "16", "20.50 GB"))):
        methods.append((label, ctx.uniform_row(bits, 16), paper))
    inside = ctx.within_budget()
    rnd = inside[~inside["uniform"]].sort_values("eval_loss", kind="stable")
    best_rnd = rnd.iloc[0] if len(rnd) else None
    methods.append((f"best mixed table configuration within budget (of {len(rnd)})", best_rnd, none4))

    pick = None
    pick_note, pick_missing = "", ""
    design = out / PICK_FILE
    try:
        art = ctx.artifact()
        space, mm, _, _, _ = ctx.search_problem()
        from qra_bench.space import QRConfig

        recorded = None if ctx.options.repick else read_pick(design)
        if recorded is not None:
            # A pick is a decision taken once: re-searching on every refit would move it to a configuration not
            # yet measured (the refit has seen the last pick's rows), so the claim could never be tested.
            pick = QRConfig(bits=tuple(recorded["bits"]), ranks=tuple(recorded["ranks"]))
            mean, std = art.predict_configs([pick], 1.0)
            pred, pred_std = float(np.asarray(mean)[0]), float(np.asarray(std)[0])
            by = recorded.get("picked_by") or {}
            how_picked = (f"recorded in `{design.name}` and reused (pass --repick for a new search): picked by "
                          f"{by.get('method', 'AutoQRA')} seed {by.get('seed', '?')} with surrogate "
                          f"`{str(by.get('surrogate_manifest_sha256', '?'))[:16]}` fitted on table "
                          f"`{str(by.get('table_hash', '?'))[:16]}`" + (f" on {by['date']}" if by.get("date") else ""))
            pred_label = f"AutoQRA pick, predicted by the current surrogate ({art.target} ± {pred_std:.4f})"
        else:
            res = ctx.autoqra(0)
            # AutoQRA's last step promotes its top candidates to real evaluation and returns the best measured
            # one; with the table as the oracle that is a lookup, else the top prediction.
            cands = list(res.candidates)
            in_table = [c for c in cands if (ctx.configs["config_hash"] == c.config.hash).any()]
            chosen = min(in_table, key=lambda c: float(ctx.configs.loc[ctx.configs["config_hash"] == c.config.hash,
                                                                      "eval_loss"].iloc[0])) if in_table else cands[0]
            pick = chosen.config
            pred, pred_std = ctx.sign() * chosen.predicted_mean, chosen.predicted_std
            write_pick(design, pick, {"method": "autoqra", "seed": 0, "budget": BUDGET_NAME,
                                      "surrogate": ctx.surrogate_path,
                                      "surrogate_manifest_sha256": _sha256_file(Path(ctx.surrogate_path) / "manifest.json"),
                                      "table_hash": ctx.table_hash,
                                      "date": time.strftime("%Y-%m-%d", time.gmtime())})
            how_picked = (f"seed 0, search against the surrogate at the budget, then its top {len(cands)} candidates "
                          f"looked up in the table, {len(in_table)} of them measured; the pick is the best measured "
                          f"one, else the top prediction; written to `{design.name}`")
            pred_label = f"AutoQRA pick, predicted by the surrogate ({art.target} ± {pred_std:.4f})"
        measured = ctx.configs[ctx.configs["config_hash"] == pick.hash]
        mem = float(mm.total_bytes(pick))
        pred_row = pd.Series({"eval_loss": pred if art.target == "eval_loss" else math.nan,
                              "accuracy": pred if art.target == "accuracy" else math.nan,
                              "eval_loss_std": math.nan, "accuracy_std": math.nan, "n_seeds": 0,
                              "avg_bits": pick.avg_bits, "avg_rank": pick.avg_rank, "mem": mem})
        methods.append((pred_label, pred_row, autoqra_paper))
        if len(measured):
            methods.append(("AutoQRA pick, measured (table rows)", measured.iloc[0], autoqra_paper))
        pick_note = (f"AutoQRA pick ({how_picked}): bits {list(pick.bits)}, ranks {list(pick.ranks)}, hash "
                     f"`{pick.hash[:16]}`" + ("" if len(measured) else
                                             f" (measure it: `qra-bench collect --model tiny --task news --design file "
                                             f"--design-file {design} --no-anchors --seeds 0,1,2 --out {ctx.table_path}`)"))
    except NotTestable as exc:
        pick_missing = exc.reason
        pick_note = f"AutoQRA pick: not computed ({exc.reason})."

    rows, numbers = [], {"budget_bytes": budget, "budget_source": how, "noise_std_eval_loss": sigma,
                         "n_repeated_configs": n_rep, "methods": {}}
    for label, r, paper in methods:
        if r is None:
            rows.append([label, "none within budget yet" if label.startswith("best mixed") else "not in table",
                         "—", "—", "—", "—", "—", *paper])
            numbers["methods"][label] = None
            continue
        fits = "yes" if math.isfinite(r["mem"]) and r["mem"] <= budget else "no"
        n = int(r["n_seeds"])
        rows.append([label, _pm(r["eval_loss"], r["eval_loss_std"], n), _pm(100 * r["accuracy"],
                     100 * r["accuracy_std"], n, 2), _f(r["avg_bits"], 2), _f(r["avg_rank"], 2), _mib(r["mem"]), fits,
                     *paper])
        numbers["methods"][label] = {k: r[k] for k in ("eval_loss", "eval_loss_std", "accuracy", "accuracy_std",
                                                       "avg_bits", "avg_rank", "mem", "n_seeds")}
    body += _table(["method", "eval_loss (nats, ours)", "accuracy % (ours)", "avg bits", "avg rank", "memory (ours)",
                    "fits budget", "paper accuracy %", "paper bits", "paper rank", "paper memory"], rows)
    body += ["", "Ours: mean ± std over seeds (n = seeds) at full fidelity. Paper: LLaMA-3.1-8B, average of seven "
             "commonsense tasks, measured peak memory.", "", pick_note, "",
             f"Seed-noise std of eval_loss: {_f(sigma)} nats ({n_rep} repeated configurations)."]

    qlora = methods[0][1]
    fp16 = methods[3][1]
    if best_rnd is not None and qlora is not None and math.isfinite(sigma):
        d = qlora["eval_loss"] - best_rnd["eval_loss"]
        m = _margin(sigma, int(qlora["n_seeds"]), int(best_rnd["n_seeds"]))
        body.append(f"QLoRA-style minus the best mixed table configuration within budget: {d:+.4f} nats (positive = the "
                    f"mixed one is better; 2-SE margin {m:.4f}; the best of many is biased low, the winner's curse).")
    _table1_plot(ctx, out, methods, budget, numbers)
    numbers["autoqra_pick"] = None if pick is None else {"bits": list(pick.bits), "ranks": list(pick.ranks),
                                                         "hash": pick.hash}
    if qlora is None:
        raise NotTestable("no uniform 4-bit rank-16 (QLoRA-style) row at full fidelity yet", body, numbers)
    if pick is None:
        raise NotTestable(f"AutoQRA's pick {pick_missing}", body, numbers)
    measured = ctx.configs[ctx.configs["config_hash"] == pick.hash]
    if measured.empty:
        raise NotTestable("AutoQRA's pick has no measured row in the table (its prediction alone cannot confirm "
                          "the claim); run the design file above", body, numbers)
    if not math.isfinite(sigma):
        raise NotTestable("no configuration has two seeds, so differences cannot be judged against seed noise",
                          body, numbers)
    p = measured.iloc[0]
    m_q = _margin(sigma, int(p["n_seeds"]), int(qlora["n_seeds"]))
    beats = p["eval_loss"] < qlora["eval_loss"] - m_q
    close = True
    fp_text = "no 16-bit LoRA row to compare with"
    if fp16 is not None:
        m_f = _margin(sigma, int(p["n_seeds"]), int(fp16["n_seeds"]))
        close = p["eval_loss"] <= fp16["eval_loss"] + m_f
        fp_text = f"pick minus 16-bit LoRA: {p['eval_loss'] - fp16['eval_loss']:+.4f} nats (margin {m_f:.4f})"
    same = [label for label, r, _ in methods[:4] if r is not None and r["config_hash"] == pick.hash]
    reason = ((f"AutoQRA's pick is the {same[0].split(' (')[0]} configuration itself; " if same else "")
              + f"QLoRA-style minus AutoQRA's pick: {qlora['eval_loss'] - p['eval_loss']:+.4f} nats (positive = the "
              f"pick is better; 2-SE margin {m_q:.4f}); {fp_text}")
    return Claim("table1", ("supported — " if beats and close else "not supported — ") + reason, body, numbers)


def _table1_plot(ctx: Context, out: Path, methods, budget: int, numbers: dict) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.6, 4.2), dpi=110)
    c = ctx.configs[np.isfinite(ctx.configs["mem"]) & np.isfinite(ctx.configs["eval_loss"])]
    ax.scatter(c["mem"] / 2**20, c["eval_loss"], s=14, color="0.6", label="table configurations")
    for label, r, _ in methods:
        if r is not None and math.isfinite(r["eval_loss"]) and math.isfinite(r["mem"]):
            ax.scatter([r["mem"] / 2**20], [r["eval_loss"]], s=40, label=label.split(" (")[0])
    ax.axvline(budget / 2**20, color="k", ls="--", lw=1, label=BUDGET_NAME)
    ax.set_xlabel("predicted training memory (MiB)")
    ax.set_ylabel("eval_loss (nats/token, lower is better)")
    ax.set_title("Table 1 analogue", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    numbers["plot"] = _save(fig, out, "table1")


# ---------------------------------------------------------------------------------------------------------
# 2. Spread within one budget
# ---------------------------------------------------------------------------------------------------------
def claim_spread(ctx: Context, out: Path) -> Claim:
    if ctx.configs.empty:
        raise NotTestable("the table has no full-fidelity rows")
    budget, how = ctx.budget()
    inside = ctx.within_budget()
    numbers: dict = {"budget_bytes": budget, "n_configs_within_budget": len(inside)}
    rows = []
    for metric, scale, unit in (("eval_loss", 1.0, "nats"), ("accuracy", 100.0, "points")):
        v = inside[metric].to_numpy(float) * scale
        v = v[np.isfinite(v)]
        sigma, n_rep = ctx.noise(metric)
        sigma *= scale
        rng = float(np.ptp(v)) if len(v) else math.nan
        std = float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
        numbers[metric] = {"range": rng, "std": std, "noise_std": sigma, "n_repeated": n_rep, "n": len(v),
                           "min": float(v.min()) if len(v) else math.nan, "max": float(v.max()) if len(v) else math.nan}
        rows.append([metric, unit, str(len(v)), _f(rng), _f(std), _f(sigma), _f(rng / sigma if sigma else math.nan, 1),
                     _f(std / sigma if sigma else math.nan, 1), "> 25 points" if metric == "accuracy" else "—"])
    body = [f"Configurations of the table whose `mem_predicted_bytes` fits `{BUDGET_NAME}` ({budget:,} bytes, {how}); "
            "each one's mean over its seeds at full fidelity. Seed noise: pooled std over configurations with >= 2 "
            "seeds.", ""]
    body += _table(["metric", "unit", "configs", "max - min", "std", "seed-noise std", "range / noise",
                    "std / noise", "paper"], rows)
    if len(inside) >= 2:
        plt = _pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), dpi=110)
        for ax, metric, scale in zip(axes, ("eval_loss", "accuracy"), (1.0, 100.0)):
            v = np.sort(inside[metric].to_numpy(float) * scale)
            ax.plot(np.arange(len(v)), v, "o", ms=3)
            sigma = ctx.noise(metric)[0] * scale
            if math.isfinite(sigma):
                ax.fill_between([0, len(v) - 1], v.min() - sigma, v.min() + sigma, alpha=0.2, label="± seed-noise std")
                ax.legend(fontsize=7)
            ax.set_xlabel("configuration (sorted)")
            ax.set_ylabel(metric + (" (%)" if metric == "accuracy" else " (nats)"))
            ax.grid(alpha=0.3)
        fig.suptitle(f"within {BUDGET_NAME}: {len(inside)} configurations", fontsize=10)
        numbers["plot"] = _save(fig, out, "spread")
    if len(inside) < 5:
        raise NotTestable(f"only {len(inside)} configurations within the budget (need >= 5)", body, numbers)
    acc = numbers["accuracy"]
    loss = numbers["eval_loss"]
    if not math.isfinite(acc["range"]):
        raise NotTestable("no accuracy values within the budget", body, numbers)
    weak = ""
    if math.isfinite(loss["noise_std"]) and loss["noise_std"] > 0:
        ratio = loss["std"] / loss["noise_std"]
        weak = (f"; the weaker form (configurations differ by more than seed noise) "
                f"{'holds' if ratio > 2 else 'does not hold'}: eval_loss std {ratio:.1f}x the seed noise")
    else:
        weak = "; no seed repeats yet to compare the spread with noise"
    verdict = "supported" if acc["range"] > 25 else "not supported"
    return Claim("spread", f"{verdict} — accuracy differs by {acc['range']:.2f} points within the budget "
                           f"(paper: > 25){weak}", body, numbers)


# ---------------------------------------------------------------------------------------------------------
# 3. Static proxies
# ---------------------------------------------------------------------------------------------------------
def _bootstrap_spearman(x: np.ndarray, y: np.ndarray, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of Spearman's rho over ``n`` resamples of the pairs (vectorized)."""
    from scipy.stats import rankdata

    idx = np.random.default_rng(seed).integers(0, len(x), (n, len(x)))
    rx, ry = rankdata(x[idx], axis=1), rankdata(y[idx], axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    ok = den > 0  # a resample with a constant side has no rank correlation
    if not ok.any():
        return math.nan, math.nan
    rho = (rx * ry).sum(axis=1)[ok] / den[ok]
    return float(np.percentile(rho, 2.5)), float(np.percentile(rho, 97.5))


def claim_proxy(ctx: Context, out: Path) -> Claim:
    from scipy import stats

    from qra_bench.errors import QRBenchError

    c = ctx.configs
    numbers: dict = {"all": {}, "within_budget": {}}
    rows = []
    try:
        inside_hashes = set(ctx.within_budget()["config_hash"])
    except QRBenchError:  # no budget can be rebuilt: the within-budget columns stay empty
        inside_hashes = set()
    usable = {}
    for proxy in PROXIES:
        for scope, frame in (("all", c), ("within_budget", c[c["config_hash"].isin(inside_hashes)])):
            ok = frame[np.isfinite(frame[proxy]) & np.isfinite(frame["eval_loss"])]
            x, y = ok[proxy].to_numpy(float), ok["eval_loss"].to_numpy(float)
            if len(ok) >= 5 and len(np.unique(x)) >= 3 and np.ptp(y) > 0:
                rho, pearson = float(stats.spearmanr(x, y)[0]), float(stats.pearsonr(x, y)[0])
                lo, hi = _bootstrap_spearman(x, y) if scope == "all" else (math.nan, math.nan)
            else:
                rho = pearson = lo = hi = math.nan
            acc = ok[np.isfinite(ok["accuracy"])]
            rho_acc = float(stats.spearmanr(acc[proxy], acc["accuracy"])[0]) \
                if len(acc) >= 5 and acc[proxy].nunique() >= 3 and acc["accuracy"].nunique() >= 2 else math.nan
            numbers[scope][proxy] = {"n": len(ok), "n_distinct_proxy": int(len(np.unique(x))), "spearman": rho,
                                     "pearson": pearson, "spearman_ci95": [lo, hi], "spearman_vs_accuracy": rho_acc}
            if scope == "all" and math.isfinite(rho):
                usable[proxy] = (x, y, rho)
        a, w = numbers["all"][proxy], numbers["within_budget"][proxy]
        rows.append([proxy, f"{a['n']} ({a['n_distinct_proxy']} distinct)", _f(a["spearman"], 3),
                     f"[{_f(a['spearman_ci95'][0], 2)}, {_f(a['spearman_ci95'][1], 2)}]", _f(a["pearson"], 3),
                     _f(a["spearman_vs_accuracy"], 3), f"{w['n']}", _f(w["spearman"], 3), _f(w["pearson"], 3),
                     "0.46 (vs accuracy)"])
    body = ["Each configuration's proxies (measured on the quantized model before fine-tuning) against its fine-tuned "
            "eval_loss, means over seeds at full fidelity. A positive rho means the proxy ranks configurations the "
            "same way as the fine-tuned loss (against accuracy, agreement shows as a negative rho for these loss-like "
            "proxies; the paper's 0.46 is a magnitude). Proxies depend on the bits only (LoRA starts at zero), so "
            "configurations differing only in rank tie on them. CI: bootstrap over configurations (1000 resamples).", ""]
    body += _table(["proxy", "configs (all)", "Spearman (all)", "95% CI", "Pearson (all)",
                    "Spearman vs accuracy (all)", "configs (in budget)",
                    "Spearman (in budget)", "Pearson (in budget)", "paper rho"], rows)
    if usable:
        plt = _pyplot()
        fig, axes = plt.subplots(1, len(usable), figsize=(3.4 * len(usable), 3.2), dpi=110, squeeze=False)
        for ax, (proxy, (x, y, rho)) in zip(axes[0], usable.items()):
            ax.scatter(x, y, s=12)
            ax.set_xlabel(proxy)
            ax.set_ylabel("eval_loss after fine-tuning")
            ax.set_title(f"Spearman {rho:.2f}", fontsize=9)
            ax.grid(alpha=0.3)
        numbers["plot"] = _save(fig, out, "proxy")
    if not usable:
        raise NotTestable("needs >= 5 configurations with proxies and eval_loss and >= 3 distinct proxy values",
                          body, numbers)
    best = max(usable, key=lambda p: abs(usable[p][2]))
    rho = usable[best][2]
    verdict = "supported" if abs(rho) <= 0.7 else "not supported"
    return Claim("proxy", f"{verdict} — the strongest static proxy ({best}) has Spearman {rho:.2f} with the fine-tuned "
                          f"eval_loss over all configurations (paper: about 0.46; we call a proxy weak when |rho| <= 0.7)",
                 body, numbers)


# ---------------------------------------------------------------------------------------------------------
# 4. Compensation
# ---------------------------------------------------------------------------------------------------------
def _ols(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Coefficients, standard errors and residual degrees of freedom of least squares (X has the intercept)."""
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    dof = len(y) - X.shape[1]
    resid = y - X @ coef
    s2 = float(resid @ resid) / dof if dof > 0 else math.nan
    cov = s2 * np.linalg.pinv(X.T @ X)
    return coef, np.sqrt(np.maximum(np.diag(cov), 0.0)), dof


def claim_compensation(ctx: Context, out: Path) -> Claim:
    c = ctx.configs
    anchors = c[c["uniform"] & np.isfinite(c["eval_loss"])]
    bits = sorted(int(b) for b in anchors["ubits"].unique())
    ranks = sorted(int(r) for r in anchors["urank"].unique())
    numbers: dict = {"grid": {}, "bits": bits, "ranks": ranks}
    rows = []
    for b in bits:
        row = [str(b)]
        cells = {}
        for r in ranks:
            sel = anchors[(anchors["ubits"] == b) & (anchors["urank"] == r)]
            if sel.empty:
                row.append("—")
                continue
            s = sel.iloc[0]
            cells[r] = float(s["eval_loss"])
            numbers["grid"][f"{b}x{r}"] = {"eval_loss": s["eval_loss"], "std": s["eval_loss_std"],
                                            "n_seeds": int(s["n_seeds"]), "accuracy": s["accuracy"]}
            row.append(_pm(s["eval_loss"], s["eval_loss_std"], int(s["n_seeds"])))
        gain = cells[min(cells)] - cells[max(cells)] if len(cells) >= 2 else math.nan
        numbers["grid"][f"{b}_rank_gain"] = gain
        row.append(_f(gain))
        rows.append(row)
    body = ["What this tests: the mechanism behind the paper's claim, that a higher LoRA rank recovers quality lost to "
            "low bits, on the uniform anchors (every block at the same bits and rank). It does not test whether the "
            "configurations a search finds pair low bits with high rank block by block.", "",
            "eval_loss at full fidelity, mean ± std over seeds (n = seeds). Rank gain: eval_loss at the lowest rank "
            "minus at the highest (positive = rank helps).", ""]
    if rows:
        body += _table(["bits \\ rank", *map(str, ranks), "rank gain (nats)"], rows)
    # Interaction fit on every anchor row (seeds as replicates): one mean per bit width (so the bits effect needs
    # no functional form), a rank slope, and how that slope changes with log2 bits (the interaction).
    f = ctx.full.copy()
    f["ub"] = [_uniform(tuple(b)) for b in f["bits"]]
    f["ur"] = [_uniform(tuple(r)) for r in f["ranks"]]
    f = f[f["ub"].notna() & f["ur"].notna() & np.isfinite(f["eval_loss"].astype(float))]
    # A bit width seen at one rank only says nothing about the rank slope there: left out of the fit.
    fit_bits = [b for b in bits if f.loc[f["ub"] == b, "ur"].nunique() >= 2]
    f = f[f["ub"].isin(fit_bits)]
    numbers["fit_bits"] = fit_bits
    fit_ok = len(fit_bits) >= 2 and len(f) >= len(fit_bits) + 4
    if fit_ok:
        ub = f["ub"].to_numpy(int)
        xb = np.log2(ub.astype(float))
        xr = np.log2(f["ur"].to_numpy(float))
        y = f["eval_loss"].to_numpy(float)
        cb, cr = float(np.mean(np.log2(fit_bits))), xr.mean()
        onehot = np.column_stack([(ub == b).astype(float) for b in fit_bits])
        X = np.column_stack([onehot, xr - cr, (xr - cr) * (xb - cb)])
        coef, se, dof = _ols(X, y)
        t = coef / np.where(se > 0, se, np.nan)
        k = len(fit_bits)
        slope, inter = coef[k], coef[k + 1]
        numbers["fit"] = {"n_rows": len(y), "dof": dof, "bit_means": dict(zip(fit_bits, coef[:k].tolist())),
                          "rank_slope": slope, "rank_slope_se": se[k], "interaction": inter,
                          "interaction_se": se[k + 1], "interaction_t": t[k + 1], "centre_log2_bits": cb,
                          "centre_log2_rank": cr}
        slopes = {b: slope + inter * (math.log2(b) - cb) for b in fit_bits}
        numbers["rank_slope_per_bits"] = slopes
        body += ["", f"Fit over {len(y)} anchor rows at bits {fit_bits} ({dof} residual dof): eval_loss = a[bits] + b·(log2 rank − "
                 f"{cr:.2f}) + c·(log2 rank − {cr:.2f})(log2 bits − {cb:.2f}), one level a per bit width. "
                 "Compensation means c > 0: a doubling of rank lowers the loss more at low bits.", ""]
        body += _table(["term", "coefficient", "std error", "t"],
                       [["b: rank slope (nats per doubling, at the mean log2 bits)", _f(slope, 5), _f(se[k], 5),
                         _f(t[k], 2)],
                        ["c: rank x bits interaction", _f(inter, 5), _f(se[k + 1], 5), _f(t[k + 1], 2)]])
        body += ["", "Slope of eval_loss per doubling of rank, at each bit width (negative = rank helps): "
                 + ", ".join(f"{b} bits {s:+.4f}" for b, s in slopes.items()) + "."]
    mixed = c[~c["uniform"] & np.isfinite(c["eval_loss"])]
    if len(mixed) >= 10:
        m = mixed
        xb = np.array([np.mean(np.log2(b)) for b in m["bits"]])
        xr = np.array([np.mean(np.log2(np.maximum(r, 1))) for r in m["ranks"]])
        y = m["eval_loss"].to_numpy(float)
        X = np.column_stack([np.ones(len(y)), xb - xb.mean(), xr - xr.mean(), (xb - xb.mean()) * (xr - xr.mean())])
        coef, se, dof = _ols(X, y)
        numbers["fit_all_configs"] = {"n": len(y), "coef": coef.tolist(), "se": se.tolist()}
        body += ["", f"Mixed configurations ({len(y)}; mean log2 bits and mean log2 rank of each, linear in both with "
                 f"their product): rank slope {coef[2]:+.5f} ± {se[2]:.5f}, interaction "
                 f"{coef[3]:+.5f} ± {se[3]:.5f} (a crude summary: a mixed configuration is not its averages)."]
    if rows and len(ranks) >= 2:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(5.6, 3.8), dpi=110)
        for b in bits:
            sel = anchors[anchors["ubits"] == b].sort_values("urank")
            ax.errorbar(sel["urank"].astype(float), sel["eval_loss"], marker="o", capsize=3, label=f"{b} bits",
                        yerr=np.nan_to_num(sel["eval_loss_std"].to_numpy(float)))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("LoRA rank (every block)")
        ax.set_ylabel("eval_loss (nats/token)")
        ax.set_title("uniform anchors: does rank compensate low bits?", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        numbers["plot"] = _save(fig, out, "compensation")
    if not fit_ok:
        raise NotTestable(f"needs uniform anchors at >= 2 bit widths with >= 2 ranks each (and 4 rows more than bit "
                          f"widths); have bits {fit_bits} with >= 2 ranks, {len(f)} rows", body, numbers)
    fit = numbers["fit"]
    b3, t3, dof = fit["interaction"], fit["interaction_t"], fit["dof"]
    low = slopes[fit_bits[0]]
    if dof < 2 or not math.isfinite(t3):
        raise NotTestable(f"too few anchor rows for the interaction fit ({dof} residual dof)", body, numbers)
    comp = b3 > 0 and t3 >= 2 and low < 0
    text = (f"rank x bits interaction c = {b3:+.4f} (t = {t3:.1f}, {dof} dof); per rank doubling eval_loss changes "
            f"{low:+.4f} nats at {fit_bits[0]} bits and {slopes[fit_bits[-1]]:+.4f} at {fit_bits[-1]} bits")
    return Claim("compensation", ("supported — higher rank recovers more at low bits: " if comp else
                                  "not supported — no significant compensation: ") + text, body, numbers)


# ---------------------------------------------------------------------------------------------------------
# 5. Screening
# ---------------------------------------------------------------------------------------------------------
def _out_of_fold(ctx: Context) -> tuple[pd.DataFrame, str]:
    """Per configuration: observed mean target and out-of-fold predicted mean at full fidelity, and the source."""
    art = ctx.artifact()
    if art.predictions is not None and {"config_hash", "fidelity_frac", "observed", "mean"} <= set(art.predictions):
        p = art.predictions
        p = p[np.isclose(p["fidelity_frac"].astype(float), 1.0)]
        src = ("the artifact's predictions.csv (random 5-fold split by configuration, out-of-fold, fitted on table hash "
               f"`{art.table_hash[:16]}`)")
    else:
        from sklearn.base import clone

        from qra_bench.surrogate.evaluate import group_kfold, run_split
        from qra_bench.surrogate.fit import training_set

        ts = training_set(ctx.table_path, art.target, art.manifest["fidelity"]["mode"])
        res = run_split(lambda: clone(art.estimator), ts.data, group_kfold(ts.data.groups, seed=0))
        p = pd.DataFrame({"config_hash": ts.data.groups[res.rows], "observed": ts.data.y[res.rows], "mean": res.mean})
        src = "a 5-fold refit by configuration of the surrogate's estimator on the table (no predictions.csv)"
    g = p.groupby("config_hash", sort=True)[["observed", "mean"]].mean().reset_index()
    return g, src


def claim_screening(ctx: Context, out: Path) -> Claim:
    from scipy import stats

    art = ctx.artifact()
    g, src = _out_of_fold(ctx)
    sign = 1.0 if art.higher_is_better else -1.0
    n = len(g)
    body = [f"Target: {art.target} ({'higher' if art.higher_is_better else 'lower'} is better). Predictions: {src}. "
            "Hit rate at k: the share of the true top 10 % configurations (by observed mean) that are in the "
            "surrogate's top k. Random screening would hit k/n on average; p: the hypergeometric chance of at least "
            "as many hits by random choice.", ""]
    numbers: dict = {"target": art.target, "n_configs": n, "source": src}
    if n < 20:
        raise NotTestable(f"only {n} configurations with out-of-fold predictions (need >= 20 so the top 10 % has "
                          ">= 2)", body, numbers)
    obs = sign * g["observed"].to_numpy(float)
    pred = sign * g["mean"].to_numpy(float)
    n_top = max(1, int(round(0.1 * n)))
    true_top = set(np.argsort(-obs, kind="stable")[:n_top].tolist())
    rows = []
    for frac in (0.1, 0.2):
        k = max(1, int(round(frac * n)))
        picked = set(np.argsort(-pred, kind="stable")[:k].tolist())
        hits = len(true_top & picked)
        p = float(stats.hypergeom.sf(hits - 1, n, n_top, k))
        numbers[f"top{int(frac * 100)}"] = {"k": k, "hits": hits, "hit_rate": hits / n_top, "random": k / n, "p": p}
        rows.append([f"{int(frac * 100)} % (k={k})", f"{hits}/{n_top} = {100 * hits / n_top:.1f} %",
                     f"{100 * min(1.0, k / n) :.1f} %", f"{p:.3g}"])
    top3 = set(np.argsort(-obs, kind="stable")[:3].tolist())
    pick3 = set(np.argsort(-pred, kind="stable")[:3].tolist())
    numbers["top3_overlap"] = len(top3 & pick3) / 3
    rho = float(stats.spearmanr(obs, pred)[0])
    numbers["spearman"] = rho
    body += _table(["surrogate top k", "hit rate (ours)", "random screening", "p (hypergeometric)"], rows)
    body += ["", f"Top-3 overlap (true top 3 among the surrogate's top 3): {100 * numbers['top3_overlap']:.1f} % "
             "(paper's top-3 hit rate: 44.7 % without, 67.3 % with surrogate screening). Out-of-fold Spearman over "
             f"configurations: {rho:.3f}."]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.2), dpi=110)
    top_mask = np.array([i in true_top for i in range(n)])
    ax.scatter(g["observed"][~top_mask], g["mean"][~top_mask], s=10, color="0.6", label="others")
    ax.scatter(g["observed"][top_mask], g["mean"][top_mask], s=18, color="C3", label="true top 10 %")
    ax.set_xlabel(f"observed {art.target} (mean over seeds)")
    ax.set_ylabel(f"out-of-fold predicted {art.target}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    numbers["plot"] = _save(fig, out, "screening")
    t20 = numbers["top20"]
    verdict = "supported" if t20["hit_rate"] > t20["random"] and t20["p"] < 0.05 else "not supported"
    return Claim("screening", f"{verdict} — the surrogate's top 20 % holds {100 * t20['hit_rate']:.0f} % of the true top "
                              f"10 % (random screening: {100 * t20['random']:.0f} %, p = {t20['p']:.3g})", body, numbers)


# ---------------------------------------------------------------------------------------------------------
# 6. Evaluations to target
# ---------------------------------------------------------------------------------------------------------
def claim_evals_to_target(ctx: Context, out: Path) -> Claim:
    from scipy.stats import wilcoxon

    from qra_bench.bench import BenchSpec
    from qra_bench.bench.runner import run_one
    from qra_bench.errors import QRBenchError

    art = ctx.artifact()
    opts = ctx.options
    base = ctx.bench(art.target)
    if (base.space.bits, base.space.ranks) != (art.space.bits, art.space.ranks):
        raise NotTestable(f"the surrogate's ladders (bits {list(art.space.bits)}, ranks {list(art.space.ranks)}) differ "
                          f"from the table's ({list(base.space.bits)}, {list(base.space.ranks)}): refit it")
    from qra_bench.memory import Budget

    bench = base.with_budget(Budget(name=BUDGET_NAME, bytes=ctx.budget()[0]))
    bench.backend, bench.surrogates = "surrogate", {art.target: art}  # the surrogate answers every configuration
    sign = ctx.sign()
    spec = BenchSpec(benchmark=ctx.table_path, backend="surrogate", optimizers=SEARCH_OPTIMIZERS, seeds=opts.seeds,
                     max_cost_s=math.inf, max_evals=opts.max_evals, metric=art.target)
    screen, screen_note = _low_fidelity_predictor(ctx)
    specs = {name: spec for name in SEARCH_OPTIMIZERS}
    # The paper's AutoQRA is surrogate-first: it screens with a model of cheap observations and spends full-fidelity
    # evaluations on the top candidates. Its screen here is fitted on the table's low-fidelity rows only, so the
    # full-fidelity answers (which the benchmark's surrogate was fitted on) are not leaked to it.
    specs[SCREENED] = dataclasses.replace(spec, optimizer_kwargs={"autoqra": {"predictor": screen}})
    runs = []
    for label, run_spec in specs.items():
        name = "autoqra" if label == SCREENED else label
        for seed in opts.seeds:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    runs.append(dataclasses.replace(run_one(name, bench, seed, run_spec), optimizer=label))
                except QRBenchError as exc:
                    raise NotTestable(f"{label} seed {seed} failed on the surrogate benchmark: {exc}") from None
    # Best known: the best the surrogate predicts among the table's configurations within budget, AutoQRA's
    # predictor-only search, and every configuration any run evaluated.
    pool = bench.pool()
    candidates = [sign * float(v) for v in art.predict_configs(pool)[0]] if pool else []
    try:
        candidates.append(ctx.autoqra(0).predicted_mean)
    except NotTestable:
        pass
    candidates += [e.quality for r in runs for e in r.evaluations if math.isfinite(e.quality)]
    best_q = max(candidates)
    tol = opts.tolerance
    names = (*SEARCH_OPTIMIZERS, SCREENED)
    reach: dict[str, list[int]] = {n: [] for n in names}
    cens = opts.max_evals + 1
    for r in runs:
        k = next((e.eval for e in r.evaluations if e.best_so_far >= best_q - tol), cens)
        reach[r.optimizer].append(k)
    evals = pd.DataFrame([{"optimizer": r.optimizer, "seed": e.seed, "eval": e.eval, art.target: e.quality * sign,
                           "best_so_far": e.best_so_far * sign, "config_hash": e.config_hash,
                           "bits": e.bits, "ranks": e.ranks}
                          for r in runs for e in r.evaluations])
    evals.to_csv(out / "claim_evals_to_target_evaluations.csv", index=False, float_format="%.8g")

    def show(k: int) -> str:
        return f"> {opts.max_evals}" if k >= cens else str(k)

    first = {r.seed: r.evaluations[0] for r in runs if r.optimizer == "autoqra" and r.evaluations}
    unit = "nats" if art.target != "accuracy" else "accuracy"
    body = [f"Benchmark: the table's surrogate backend (every answer is the surrogate's prediction of {art.target} at "
            f"full fidelity; no live trials), budget `{BUDGET_NAME}` ({ctx.budget()[0]:,} bytes), seeds "
            f"{_seed_text(list(opts.seeds))}, at most {opts.max_evals} evaluations per run. `autoqra` runs without a "
            "surrogate (it fits its own model to what it is told). `autoqra+screen` is the paper's surrogate-first "
            f"AutoQRA: {screen_note} The benchmark's answers are never shown to either. "
            f"Best known {art.target}: {sign * best_q:.4f} (best surrogate prediction over the table's configurations "
            f"within budget, AutoQRA's surrogate search and every evaluated configuration). Target: within {tol:g} "
            f"{unit} of it.", ""]
    body += _table(["seed", *names], [[str(s), *(show(reach[n][i]) for n in names)] for i, s in enumerate(opts.seeds)])
    med = {n: float(np.median(reach[n])) for n in names}
    mean = {n: float(np.mean(reach[n])) for n in names}
    n_reached = {n: sum(k < cens for k in reach[n]) for n in names}
    ratio = mean["random"] / mean[SCREENED]
    bound = "≥ " if n_reached["random"] < len(opts.seeds) else ""
    a, r_ = np.asarray(reach[SCREENED], float), np.asarray(reach["random"], float)
    p = float(wilcoxon(a, r_).pvalue) if len(a) >= 2 and np.any(a != r_) else math.nan
    body += ["", *_table(["", "AutoQRA (no surrogate)", "random", "SMAC3 alone", "AutoQRA + screen", "paper"],
                         [["median evaluations to target", *(show(int(med[n])) if med[n] < cens else f"> {opts.max_evals}"
                                                             for n in names), "6 (AutoQRA), 107 (random)"],
                          ["mean (unreached counted as max + 1)", *(f"{mean[n]:.1f}" for n in names), "—"],
                          ["runs that reached the target", *(f"{n_reached[n]}/{len(opts.seeds)}" for n in names), "—"],
                          ["ratio random / AutoQRA + screen (means)", "", "", "", f"{bound}{ratio:.1f}",
                           f"{107 / 6:.1f} (107/6)"]]),
             "", f"Paired Wilcoxon signed-rank over seeds, AutoQRA + screen vs random: p = {_f(p, 3)}. Every told answer: "
             "`claim_evals_to_target_evaluations.csv`.", "",
             "AutoQRA's first ask is its warm start (importance priors of the benchmark, flat when there are none): "
             + "; ".join(f"seeds {_seed_text(ss)}: bits [{b}], ranks [{r}], {art.target} {sign * q:.4f}"
                         for (b, r, q), ss in _group_first(first).items()) + "."]
    numbers = {"target": art.target, "best_known": sign * best_q, "tolerance": tol, "max_evals": opts.max_evals,
               "seeds": list(opts.seeds), "evals_to_target": reach, "median": med, "mean": mean,
               "n_reached": n_reached, "ratio_random_over_autoqra": ratio, "ratio_is_lower_bound": bool(bound),
               "p_wilcoxon": p, "backend": "surrogate"}
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for n in names:
        sub = evals[evals["optimizer"] == n].groupby("eval")["best_so_far"].mean()
        ax.plot(sub.index, sub.to_numpy(), label=n)
    ax.axhline(sign * best_q, color="k", lw=1, label="best known")
    ax.axhline(sign * best_q - sign * tol, color="k", lw=1, ls="--", label=f"target (± {tol:g})")
    ax.set_xlabel("evaluations")
    ax.set_ylabel(f"best {art.target} so far (mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    numbers["plot"] = _save(fig, out, "evals_to_target")
    if n_reached[SCREENED] == 0 and n_reached["random"] == 0:
        raise NotTestable(f"neither AutoQRA nor random search came within {tol:g} of the best known in "
                          f"{opts.max_evals} evaluations (raise --max-evals or --tolerance)", body, numbers)
    faster = med[SCREENED] < med["random"] and math.isfinite(p) and p < 0.05
    return Claim("evals_to_target",
                 f"{'supported' if faster else 'not supported'} — median evaluations to target: AutoQRA + screen "
                 f"{show(int(min(med[SCREENED], cens)))}, AutoQRA without a surrogate "
                 f"{show(int(min(med['autoqra'], cens)))}, random {show(int(min(med['random'], cens)))}, SMAC3 "
                 f"{show(int(min(med['smac-hpo'], cens)))}; ratio random/(AutoQRA + screen) {bound}{ratio:.1f} (paper 107/6 = 17.8), "
                 f"Wilcoxon p = {_f(p, 3)}", body, numbers)



def _low_fidelity_predictor(ctx: Context) -> tuple[Callable, str]:
    """A screen for AutoQRA fitted on the table's low-fidelity rows only (fidelity < 1), predicting at the highest
    of them, and a sentence that says so (rows, fractions, trial seconds those fractions cost)."""
    from qra_bench.surrogate.fit import make_estimator, training_set

    art = ctx.artifact()
    spec = art.encoder_spec
    ts = training_set(ctx.table_path, art.target, "all", importance=(spec.importance_q, spec.importance_r))
    low = ts.data.fidelity_frac < 1.0 - 1e-9
    if not low.any():
        raise NotTestable("the table has no low-fidelity rows to fit AutoQRA's screen on")
    frac = float(ts.data.fidelity_frac[low].max())
    model = make_estimator("xgb", seed=0).fit(ts.data.X[low], ts.data.y[low])
    encoder, sign = ts.encoder_spec.build(), ctx.sign()

    def predictor(bit_idx: np.ndarray, rank_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, std = model.predict(encoder.transform(np.atleast_2d(bit_idx), np.atleast_2d(rank_idx), frac), return_std=True)
        return sign * np.asarray(mean, float), np.asarray(std, float)

    fracs = sorted({round(float(f), 3) for f in ts.data.fidelity_frac[low]})
    note = (f"its screen is an XGBoost ensemble fitted on the table's {int(low.sum())} low-fidelity rows only "
            f"(fractions {', '.join(f'{f:g}' for f in fracs)} of the run), predicting at {frac:g}.")
    return predictor, note


def _group_first(first: dict) -> dict:
    groups: dict = {}
    for seed, e in sorted(first.items()):
        groups.setdefault((e.bits, e.ranks, e.quality), []).append(seed)
    return groups


# ---------------------------------------------------------------------------------------------------------
# 7. Ablations
# ---------------------------------------------------------------------------------------------------------
def claim_ablations(ctx: Context, out: Path) -> Claim:
    from qra_bench.errors import QRBenchError

    art = ctx.artifact()
    sign = ctx.sign()
    seeds = ctx.options.ablation_seeds
    variants = {"both": "full AutoQRA", "bits": "bits only (rank fixed)", "ranks": "ranks only (bits fixed)"}
    values: dict[str, list[float]] = {v: [] for v in variants}
    rows = []
    for seed in seeds:
        row = [str(seed)]
        for axes in variants:
            try:
                res = ctx.autoqra(seed, axes)
            except QRBenchError as exc:
                raise NotTestable(f"the {axes} search cannot run at this budget: {exc}") from None
            v = sign * res.predicted_mean
            values[axes].append(v)
            row.append(f"{v:.4f} ± {res.predicted_std:.4f} (bits {res.incumbent.avg_bits:.2f}, rank "
                       f"{res.incumbent.avg_rank:.1f})")
        rows.append(row)
    sigma, n_rep = ctx.noise(art.target)
    src = f"table seed noise ({n_rep} repeated configurations)"
    if not math.isfinite(sigma):
        sigma = (art.manifest.get("noise_floor", {}).get("full", {}) or {}).get("std") or math.nan
        src = "the surrogate manifest's noise floor"
    means = {v: float(np.mean(values[v])) for v in variants}
    better = {v: sign * (means["both"] - means[v]) for v in ("bits", "ranks")}  # > 0: the full search is better
    body = [f"Predictor-only AutoQRA (both stages against the surrogate, no real trials) at `{BUDGET_NAME}` "
            f"({ctx.budget()[0]:,} bytes), seeds {_seed_text(list(seeds))}: the surrogate's predicted {art.target} "
            "(mean ± std) of each search's incumbent. The bits-only search fixes every rank at 16 and the rank-only "
            "search every bit width at 4 (lowered rung by rung if that does not fit; see `restrict_axes`). Not "
            "tested here: removing the warm start, either stage or the surrogate.", ""]
    body += _table(["seed", *variants.values()], rows)
    body += ["", *_table(["", *variants.values()],
                         [[f"mean predicted {art.target}", *(f"{means[v]:.4f}" for v in variants)],
                          ["full better by", "—", f"{better['bits']:+.4f}", f"{better['ranks']:+.4f}"]]),
             "", f"Seed-noise std of {art.target}: {_f(sigma)} ({src})."]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=110)
    for i, v in enumerate(variants):
        ax.scatter(np.full(len(values[v]), i), values[v], s=16)
        ax.hlines(means[v], i - 0.25, i + 0.25, color="k")
    ax.set_xticks(range(len(variants)), list(variants.values()), fontsize=8)
    ax.set_ylabel(f"predicted {art.target} of the incumbent")
    ax.grid(alpha=0.3)
    numbers = {"target": art.target, "seeds": list(seeds), "values": values, "means": means,
               "full_better_by": better, "noise_std": sigma, "noise_source": src,
               "plot": _save(fig, out, "ablations")}
    if not math.isfinite(sigma):
        raise NotTestable("no seed-noise estimate (no configuration has two seeds) to judge the differences against",
                          body, numbers)
    hurts = {v: better[v] > sigma for v in better}
    rule = f"by more than one seed-noise std ({sigma:.4f})"
    verdict = "supported" if all(hurts.values()) else "not supported"
    return Claim("ablations", f"{verdict} — full AutoQRA's predicted {art.target} is better than bits-only by "
                              f"{better['bits']:+.4f} and than rank-only by {better['ranks']:+.4f}; a variant hurts when "
                              f"full is better {rule}: "
                              + ", ".join(f"{v}-only {'hurts' if h else 'does not hurt'}" for v, h in hurts.items()),
                 body, numbers)


# ---------------------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------------------
CLAIMS: dict[str, tuple[Callable[[Context, Path], Claim], bool]] = {
    # name: (function, whether it uses the surrogate)
    "table1": (claim_table1, True),
    "spread": (claim_spread, False),
    "proxy": (claim_proxy, False),
    "compensation": (claim_compensation, False),
    "screening": (claim_screening, True),
    "evals_to_target": (claim_evals_to_target, True),
    "ablations": (claim_ablations, True),
}


# The table-1 pick file is not stale with a new table: it is reused (see claim_table1).
STALE = {"evals_to_target": ("claim_evals_to_target_evaluations.csv",)}
PICK_FILE = "autoqra_pick_uniform-4bit.jsonl"


def read_pick(path: Path) -> Optional[dict]:
    """The recorded AutoQRA pick (``bits``, ``ranks`` and, when recorded, ``picked_by``), or None."""
    if not path.is_file():
        return None
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    record = json.loads(lines[0]) if lines else None
    return record if isinstance(record, dict) and {"bits", "ranks"} <= set(record) else None


def write_pick(path: Path, cfg, picked_by: dict) -> None:
    """One JSON line a collector design file accepts (it ignores ``picked_by``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"bits": list(cfg.bits), "ranks": list(cfg.ranks), "picked_by": picked_by}) + "\n")


def run_claim(ctx: Context, name: str, out: Path) -> Claim:
    """Run one claim and write ``claim_<name>.md`` and ``.json`` under ``out``; return the outcome."""
    from qra_bench.errors import QRBenchError

    fn, uses_surrogate = CLAIMS[name]
    out.mkdir(parents=True, exist_ok=True)
    # Files of an earlier run must not sit beside a new verdict.
    for stale in (f"claim_{name}.png", *STALE.get(name, ())):
        (out / stale).unlink(missing_ok=True)
    try:
        claim = fn(ctx, out)
    except NotTestable as exc:
        claim = Claim(name, f"not testable yet: {exc.reason}", exc.body, exc.numbers)
    except QRBenchError as exc:  # the table's recipe or budget cannot be rebuilt: a data gap, not a bug
        claim = Claim(name, f"not testable yet: {exc}", [], {})
    claim.plot = claim.numbers.get("plot") if (out / f"claim_{name}.png").is_file() else None
    lines = [f"# Claim `{name}`: {TITLES[name]}", "", f"**Paper**: {PAPER[name]}", "",
             f"**Verdict:** {claim.verdict}", ""]
    if claim.body:
        lines += ["## Ours", "", *claim.body, ""]
    if claim.plot:
        lines += [f"![{name}]({claim.plot})", ""]
    lines += [*ctx.source_lines(uses_surrogate), f"- regenerate: `{ctx.command(name, uses_surrogate, out)}`", ""]
    (out / f"claim_{name}.md").write_text("\n".join(lines))
    record = {"claim": name, "title": TITLES[name], "paper": PAPER[name], "verdict": claim.verdict,
              "table": ctx.table_path, "table_hash": ctx.table_hash,
              "surrogate": ctx.surrogate_path if uses_surrogate else None, "numbers": claim.numbers}
    (out / f"claim_{name}.json").write_text(json.dumps(_json_safe(record), indent=1, default=str) + "\n")
    return claim


def _int_list(text: str) -> tuple[int, ...]:
    from qra_bench.cli import int_list

    return int_list(text, "seeds")


def main(argv: Optional[list[str]] = None) -> int:
    from qra_bench.errors import QRBenchError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claim", default="all", help=f"all, or a comma list of: {', '.join(CLAIMS)}")
    parser.add_argument("--table", default=DEFAULT_TABLE, help="results table directory")
    parser.add_argument("--surrogate", default=None, help="surrogate artifact directory (from `qra-bench fit`)")
    parser.add_argument("--out", default=str(RESULTS), help="output directory (default experiments/results)")
    parser.add_argument("--tolerance", type=float, default=0.01,
                        help="evals_to_target: distance to the best known, in the surrogate target's units")
    parser.add_argument("--max-evals", type=int, default=100, help="evals_to_target: evaluations per run")
    parser.add_argument("--seeds", default="0-9", help="evals_to_target: optimizer seeds")
    parser.add_argument("--ablation-seeds", default="0-4", help="ablations: AutoQRA seeds")
    parser.add_argument("--generations", type=int, default=None, help="AutoQRA Stage-1 generations (default 12)")
    parser.add_argument("--stage2-evals", type=int, default=None, help="AutoQRA Stage-2 predictor evaluations (30)")
    parser.add_argument("--repick", action="store_true",
                        help="table1: search for a new AutoQRA pick instead of reusing the recorded one")
    parser.add_argument("--allow-hash-mismatch", action="store_true",
                        help="use a surrogate fitted on an earlier state of the table")
    args = parser.parse_args(argv)
    try:
        names = list(CLAIMS) if args.claim == "all" else [n.strip() for n in args.claim.split(",")]
        bad = [n for n in names if n not in CLAIMS]
        if bad:
            raise QRBenchError(f"unknown claim(s) {', '.join(bad)}; allowed: all, {', '.join(CLAIMS)}")
        if args.max_evals < 1 or not args.tolerance >= 0:
            raise QRBenchError(f"--max-evals must be >= 1 and --tolerance >= 0, got {args.max_evals}, {args.tolerance}")
        options = Options(tolerance=args.tolerance, max_evals=args.max_evals, seeds=_int_list(args.seeds),
                          ablation_seeds=_int_list(args.ablation_seeds), generations=args.generations,
                          stage2_evals=args.stage2_evals, allow_hash_mismatch=args.allow_hash_mismatch,
                          repick=args.repick)
        ctx = Context(args.table, args.surrogate, options)
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
        print(f"\nTable {ctx.table_path} (hash {ctx.table_hash[:16]}), surrogate {ctx.surrogate_path or 'none'}\n")
        print("\n".join(_table(["claim", "verdict", "file"],
                               [[c.name, c.verdict.split(" — ")[0], str(out / f"claim_{c.name}.md")] for c in results])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
