"""A surrogate bound to its results table: the search space, memory model, importance priors and trial recipe
a search under a budget needs (:class:`SurrogateProblem`, built by :func:`load_problem`).

The memory model follows a budget convention: by default the table's (the dtypes, layout and batch its trials
recorded, so budgets and feasibility agree with the memory the trials measured and with ``qra-bench bench``), or
``bf16`` (the 16-bit storage and training defaults of :class:`~qra_bench.memory.MemorySettings`, the view of a
GPU user). Predictions handed to the search layer are "higher is better": a surrogate of a loss is negated.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import pandas as pd

from qra_bench.arch import ArchSpec, load_arch
from qra_bench.data import PathLike
from qra_bench.errors import QRBenchError
from qra_bench.memory import MemoryModel, MemorySettings
from qra_bench.recipe import recorded_recipe, settings_from_recipe, table_value
from qra_bench.search.base import Priors, as_priors
from qra_bench.search.predictors import Predictor
from qra_bench.space import SearchSpace
from qra_bench.surrogate.artifact import SurrogateArtifact

if TYPE_CHECKING:  # torch-importing modules, loaded only for real trials and exports
    from qra_bench.lora import LoraSettings
    from qra_bench.quant import QuantSettings
    from qra_bench.trial import TrialSettings

__all__ = ["MEMORY_CONVENTIONS", "SurrogateProblem", "load_problem"]


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

    # -- the table's recipe ----------------------------------------------------------------------------------
    def recipe(self, column: str) -> str:
        """The one value of ``column`` (``model_name``, ``task_name``, ``backend``) over the table's ok rows."""
        return table_value(self.frame, column, self.table_path)

    def trial_settings(self, steps: Optional[int] = None, threads: Optional[int] = None) -> "TrialSettings":
        """The table's trial recipe (so new rows line up with the old ones); ``steps`` overrides max_steps and
        ``threads`` the torch CPU threads.

        The quantization backend is the caller's when given, else the recorded one (else the memory model's);
        the group size is the memory model's. The memory layout is not the backend: torchao's trials are charged
        the packed ``formula`` layout, so the backend comes from the recorded settings.
        """
        recorded = recorded_recipe(self.frame)
        backend = self.quant_backend or (recorded.get("quant") or {}).get("backend") or self.backend
        return settings_from_recipe(
            recorded,
            quant_backend=backend,
            group_size=self.memory_model.settings.group_size,
            steps=steps,
            threads=threads,
        )

    def quant_settings(self) -> "QuantSettings":
        """The quantization settings of :meth:`trial_settings`."""
        return self.trial_settings().quant

    def lora_settings(self) -> "LoraSettings":
        """The LoRA settings of the table's trials (alpha per rank, dropout, rsLoRA); defaults if unrecorded."""
        return self.trial_settings().lora


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
