"""A low-fidelity screen: the surrogate-first predictor AutoQRA searches with when it must not see answers it
has not paid for.

It is an XGBoost ensemble fitted on a table's rows at fractions of the run no larger than ``max_frac``
(the cheap, truncated fine-tunes), predicting at the largest such fraction. Full-fidelity rows never enter it,
so a search that uses it and is scored on full-fidelity answers learns those only from its own evaluations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np

from qra_bench.errors import QRBenchError

if TYPE_CHECKING:
    from qra_bench.surrogate.evaluate import Estimator
    from qra_bench.surrogate.features import FeatureEncoder

__all__ = ["LowFidelityScreen", "low_fidelity_screen"]


@dataclass
class LowFidelityScreen:
    """``screen(bit_idx, rank_idx) -> (mean, std)`` with mean signed so that higher is better."""

    model: Estimator  # fitted
    encoder: FeatureEncoder
    frac: float
    sign: float
    n_rows: int
    fractions: tuple[float, ...]

    def __call__(self, bit_idx: np.ndarray, rank_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = self.encoder.transform(np.atleast_2d(bit_idx), np.atleast_2d(rank_idx), self.frac)
        mean, std = self.model.predict(X, return_std=True)
        return self.sign * np.asarray(mean, float), np.asarray(std, float)

    @property
    def note(self) -> str:
        return (
            f"an XGBoost ensemble fitted on the table's {self.n_rows} rows at fractions "
            f"{', '.join(f'{f:g}' for f in self.fractions)} of the run (no full-fidelity row), predicting at "
            f"{self.frac:g}"
        )


def low_fidelity_screen(
    table_path: Union[str, Path],
    target: str = "eval_loss",
    max_frac: float = 0.5,
    seed: int = 0,
    params: dict | None = None,
) -> LowFidelityScreen:
    """Fit the screen on ``table_path``'s ok rows at fractions of the run ``<= max_frac`` (see the module)."""
    from qra_bench.surrogate.fit import TARGETS, make_estimator, training_set

    if not 0.0 < max_frac < 1.0:
        raise QRBenchError(f"max_frac must be a fraction of the run in (0, 1), got {max_frac!r}")
    ts = training_set(table_path, target, "all")
    low = ts.data.fidelity_frac <= max_frac + 1e-9
    if not low.any():
        raise QRBenchError(f"table {table_path} has no rows at <= {max_frac:g} of the run to fit a screen on")
    frac = float(ts.data.fidelity_frac[low].max())
    model = make_estimator("xgb", seed=seed, params=params).fit(
        ts.data.X[low], ts.data.y[low], groups=ts.data.groups[low]
    )
    fractions = tuple(sorted({round(float(f), 3) for f in ts.data.fidelity_frac[low]}))
    return LowFidelityScreen(
        model, ts.encoder_spec.build(), frac, 1.0 if TARGETS[target] else -1.0, int(low.sum()), fractions
    )
