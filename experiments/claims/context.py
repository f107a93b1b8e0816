"""The shared context of the claims: a scenario's table, its per-configuration means, the seed noise, the
budget (the scenario's budget through the table's memory model), the surrogate and the provenance lines."""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from qra_bench.scenarios import SCENARIOS, Scenario

from .report import NotTestable, seed_text

RESULTS = Path(__file__).resolve().parents[1] / "results"
PROXIES = ("proxy_eval_loss", "proxy_lm_loss", "proxy_recon_error")
#: The scenario the claims are regenerated on unless ``--scenario`` names another.
DEFAULT_SCENARIO = next(s.name for s in SCENARIOS if s.headline)


@dataclass
class Options:
    """Settings of the surrogate claims (searches, seeds) and of the table-1 pick."""

    tolerance: float = 0.01
    max_evals: int = 100
    seeds: tuple[int, ...] = tuple(range(10))
    ablation_seeds: tuple[int, ...] = tuple(range(5))
    generations: Optional[int] = None
    stage2_evals: Optional[int] = None
    allow_hash_mismatch: bool = False
    repick: bool = False  # table1: search for a new pick even if one is recorded


def scenario_of_table(table: object) -> Optional[Scenario]:
    """The shipped scenario whose table is at ``table``, or None."""
    where = Path(str(table)).resolve()
    return next((s for s in SCENARIOS if Path(s.table_path()).resolve() == where), None)


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shown(path: object) -> str:
    """``path`` relative to the checkout when it lies inside it (commands and provenance stay portable)."""
    from qra_bench.data import checkout_root

    p = Path(str(path))
    try:
        return p.resolve().relative_to(checkout_root()).as_posix()
    except ValueError:
        return str(path)


def uniform_value(values: tuple) -> Optional[int]:
    """The common value of a uniform tuple, else None."""
    return int(values[0]) if len(set(values)) == 1 else None


class Context:
    """Everything the claims read, loaded once: rows, per-configuration means, noise, budget, surrogate.

    ``table`` and ``surrogate`` override the scenario's; the scenario's xgb surrogate is used only with its own
    table (a surrogate is bound to the table it was fitted on).
    """

    def __init__(
        self, scenario: Scenario, options: Options, table: Optional[str] = None, surrogate: Optional[str] = None
    ) -> None:
        from qra_bench.errors import QRBenchError
        from qra_bench.table import ResultsTable

        self.scenario, self.options = scenario, options
        if table is not None and Path(table).resolve() == Path(scenario.table_path()).resolve():
            table = None  # the scenario's own table, named by its path
        self.table_given, self.surrogate_given = table is not None, surrogate is not None
        # Paths as read (absolute for the scenario's own files) and as shown in reports and commands.
        self.table_path = str(table) if table is not None else str(scenario.table_path())
        if surrogate is None and table is None:
            surrogate = str(scenario.surrogate_path("xgb"))
        self.surrogate_path = surrogate
        self.table_shown = shown(self.table_path) if table is None else str(table)
        self.surrogate_shown = shown(surrogate) if surrogate is not None and not self.surrogate_given else surrogate
        self.budget_name, self.metric = scenario.budget, scenario.metric
        results = ResultsTable(self.table_path)
        if not results.exists:
            raise QRBenchError(f"no table at {self.table_path}")
        self.rows = results.read()
        self.table_hash = results.content_hash()
        frac = self.rows["fidelity_frac"].astype(float)
        self.full = self.rows[np.isclose(frac, 1.0)].reset_index(drop=True)
        self.configs = per_config(self.full)
        self._cache: dict[Any, Any] = {}

    @property
    def pick_file(self) -> str:
        """Name of the file recording AutoQRA's table-1 pick for this scenario (and so its budget)."""
        return f"autoqra_pick_{self.scenario.name}.jsonl"

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
        """(bytes, how they were obtained): the scenario's budget evaluated with the table's memory model."""
        if "budget" not in self._cache:
            self._cache["budget"] = (int(self.bench().budget.bytes), "evaluated with the table's memory model")
        return self._cache["budget"]

    def uniform_row(self, bits: int, rank: int) -> Optional[pd.Series]:
        """The per-configuration row of the uniform configuration (bits, rank), or None."""
        sel = self.configs[(self.configs["ubits"] == bits) & (self.configs["urank"] == rank)]
        return None if sel.empty else sel.iloc[0]

    def within_budget(self) -> pd.DataFrame:
        """Per-configuration rows whose recorded memory fits the budget."""
        b, _ = self.budget()
        c = self.configs
        return c[np.isfinite(c["mem"]) & (c["mem"] <= b)]

    # -- benchmark and surrogate ---------------------------------------------------------------------------
    def bench(self, metric: Optional[str] = None):
        """The table backend of :class:`~qra_bench.harness.Benchmark` (memory model matching the table)."""
        from qra_bench.harness import METRICS, Benchmark

        metric = metric or (self.artifact().target if self.surrogate_path and self._artifact_or_none() else self.metric)
        metric = metric if metric in METRICS else "eval_loss"
        key = ("bench", metric)
        if key not in self._cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._cache[key] = Benchmark.load(
                    self.table_path, backend="table", budget=self.budget_name, metric=metric
                )
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
                self._cache["artifact"] = NotTestable(
                    "needs a surrogate (--surrogate; fit one with `qra-bench fit "
                    f"--table {self.table_path} --target eval_loss`)"
                )
            elif not (Path(self.surrogate_path) / "manifest.json").is_file():
                self._cache["artifact"] = NotTestable(
                    f"no surrogate at {self.surrogate_shown} yet (fit one with `qra-bench fit --table "
                    f"{self.table_shown} --target {self.metric} --out {self.surrogate_shown}`)"
                )
            else:
                try:
                    art = SurrogateArtifact.load(
                        self.surrogate_path, table_path=self.table_path, allow_hash_mismatch=True
                    )
                    if art.multi_fidelity:
                        raise QRBenchError(
                            f"surrogate {self.surrogate_path} is multi-fidelity; the claims need one "
                            "fitted with --fidelity all or full"
                        )
                    if art.table_hash != self.table_hash and not self.options.allow_hash_mismatch:
                        raise QRBenchError(
                            f"surrogate {self.surrogate_path} was fitted on table hash {art.table_hash[:16]}, the "
                            f"table is now {self.table_hash[:16]}: refit it, or pass --allow-hash-mismatch"
                        )
                    self._cache["artifact"] = art
                except QRBenchError as exc:
                    self._cache["artifact"] = NotTestable(str(exc))
        value = self._cache["artifact"]
        if isinstance(value, NotTestable):
            raise NotTestable(value.reason)
        return value

    def sign(self) -> float:
        """+1 when the surrogate's target is higher-is-better, else -1."""
        return 1.0 if self.artifact().higher_is_better else -1.0

    def search_problem(self):
        """(space, memory model, budget, priors, predictor) for a search against the surrogate at the budget."""
        from qra_bench.memory import Budget, MemoryModel
        from qra_bench.search.base import Priors, as_priors

        if "problem" not in self._cache:
            art = self.artifact()
            bench = self.bench(art.target)
            mm = MemoryModel(bench.memory_model.arch, bench.memory_model.settings, art.space)
            budget = Budget(name=self.budget_name, bytes=self.budget()[0])
            iq, ir = art.encoder_spec.importance_q, art.encoder_spec.importance_r
            priors = (
                as_priors(Priors(importance_q=iq, importance_r=ir), art.space.n_blocks) if iq and any(iq + ir) else None
            )
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
                self._cache[key] = autoqra_search(
                    space, mm, budget, predictor, priors, seed=seed, settings=settings, axes=axes
                )
        return self._cache[key]

    # -- provenance --------------------------------------------------------------------------------------------
    def source_lines(self, uses_surrogate: bool) -> list[str]:
        """The Markdown ``Source`` section: scenario, table and content hash, surrogate and manifest hash."""
        n_cfg = len(self.configs)
        seeds = sorted(int(s) for s in self.rows["seed"].unique()) if len(self.rows) else []
        own = "" if not self.table_given else " (its table replaced by `--table`)"
        lines = [
            "## Source",
            "",
            f"- scenario: `{self.scenario.name}`{own}: {self.scenario.model} / {self.scenario.task}, budget "
            f"`{self.budget_name}`, metric `{self.metric}`",
            f"- table: `{self.table_shown}`, content hash `{self.table_hash}` ({len(self.rows)} ok rows; "
            f"{len(self.full)} at full fidelity, {n_cfg} configurations, seeds {seed_text(seeds)})",
        ]
        if uses_surrogate:
            if not self.surrogate_path:
                lines.append("- surrogate: none given")
            else:
                manifest = Path(self.surrogate_path) / "manifest.json"
                if manifest.is_file():
                    m = json.loads(manifest.read_text())
                    bound = m.get("table", {}).get("content_hash", "?")
                    state = (
                        "matches the table" if bound == self.table_hash else f"MISMATCH: fitted on table hash `{bound}`"
                    )
                    lines.append(
                        f"- surrogate: `{self.surrogate_shown}`, manifest sha256 `{sha256_file(manifest)}`, "
                        f"{m.get('model', {}).get('kind', '?')} of {m.get('target', {}).get('name', '?')} "
                        f"({m.get('fidelity', {}).get('mode', '?')} fidelities), {state}"
                    )
                else:
                    lines.append(f"- surrogate: `{self.surrogate_shown}` (no manifest.json there)")
        return lines

    def command(self, name: str, uses_surrogate: bool, out: Path) -> str:
        """The command line that regenerates claim ``name`` as it was run."""
        cmd = f".venv/bin/python experiments/claims.py --claim {name} --scenario {self.scenario.name}"
        if self.table_given:
            cmd += f" --table {self.table_path}"
        if uses_surrogate and self.surrogate_path:
            if self.surrogate_given:
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


def per_config(full: pd.DataFrame) -> pd.DataFrame:
    """Full-fidelity rows averaged over seeds: one row per configuration (NaN-safe, nullable ints as floats)."""
    cols = ["eval_loss", "accuracy", "proxy_accuracy", *PROXIES, "mem_predicted_bytes", "avg_bits", "avg_rank"]
    empty = pd.DataFrame(
        columns=[
            "config_hash",
            "bits",
            "ranks",
            "n_seeds",
            "mem",
            "ubits",
            "urank",
            "uniform",
            *cols,
            "eval_loss_std",
            "accuracy_std",
        ]
    )
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
    ubits = [uniform_value(b) for b in out["bits"]]
    urank = [uniform_value(r) for r in out["ranks"]]
    out["uniform"] = [b is not None and r is not None for b, r in zip(ubits, urank)]
    # Mixed configurations get 0 (no bit width or rank is 0 on a uniform anchor's ladder), keeping ints.
    out["ubits"] = [b or 0 for b in ubits]
    out["urank"] = [r or 0 for r in urank]
    return out
