"""The bridge between the search space and SMAC3 (smac 2.x) shared by the SMAC3-driven optimizers.

The ``ConfigurationSpace`` of a :class:`~qra_bench.space.SearchSpace` (one ordinal hyperparameter per block for
bits, ``bits_00``..., and one for ranks, ``rank_00``...), the codec between rung indices and SMAC3
``Configuration`` vectors, SMAC3 trial records for told results, and the three components
:class:`~qra_bench.search.trust_region.TrustRegionBO` plugs into SMAC3's loop (its predictor as the model,
expected improvement clipped at 0, the trust-region acquisition maximizer). SMAC3 is imported on first use
only, so importing :mod:`qra_bench.search` does not import it (or dask).
"""

from __future__ import annotations

import functools
import logging
import math
import weakref
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from qra_bench.space import QRConfig, SearchSpace

if TYPE_CHECKING:
    from ConfigSpace import Configuration, ConfigurationSpace
    from smac.runhistory.dataclasses import TrialInfo, TrialValue

    from qra_bench.search.trust_region import TrustRegionBO

__all__ = ["Codec", "configuration_space", "quiet_smac", "smac_components", "trial_value", "user_trial"]


def configuration_space(space: SearchSpace, seed: int = 0, default: Optional[QRConfig] = None) -> ConfigurationSpace:
    """SMAC3 ``ConfigurationSpace``: ordinal ``bits_XX`` and ``rank_XX`` per block (default: ``default``)."""
    from ConfigSpace import ConfigurationSpace, OrdinalHyperparameter

    default = default or space.uniform(space.bits[len(space.bits) // 2], space.ranks[len(space.ranks) // 2])
    cs = ConfigurationSpace(seed=seed)
    width = max(2, len(str(space.n_blocks - 1)))
    cs.add(
        [
            OrdinalHyperparameter(f"bits_{l:0{width}d}", list(space.bits), default_value=default.bits[l])
            for l in range(space.n_blocks)
        ]
        + [
            OrdinalHyperparameter(f"rank_{l:0{width}d}", list(space.ranks), default_value=default.ranks[l])
            for l in range(space.n_blocks)
        ]
    )
    return cs


class Codec:
    """Rung indices <-> SMAC ``Configuration`` vectors (an ordinal's vector value is its rung index)."""

    def __init__(self, space: SearchSpace, cs: ConfigurationSpace) -> None:
        from ConfigSpace import Configuration

        self._Configuration, self.cs, self.space = Configuration, cs, space
        width = max(2, len(str(space.n_blocks - 1)))
        self.bcols = np.array([cs.index_of[f"bits_{l:0{width}d}"] for l in range(space.n_blocks)])
        self.rcols = np.array([cs.index_of[f"rank_{l:0{width}d}"] for l in range(space.n_blocks)])
        self.dim = 2 * space.n_blocks

    def to_configuration(self, bi: np.ndarray, ri: np.ndarray) -> Configuration:
        vec = np.empty(self.dim, dtype=float)
        vec[self.bcols], vec[self.rcols] = bi, ri
        return self._Configuration(self.cs, vector=vec)

    def vectors_to_indices(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = np.rint(np.atleast_2d(X)).astype(np.int64)
        return X[:, self.bcols], X[:, self.rcols]

    def to_qrconfig(self, config: Configuration) -> QRConfig:
        bi, ri = self.vectors_to_indices(config.get_array()[None, :])
        return self.space.from_indices(bi[0], ri[0])


@functools.lru_cache(maxsize=1)
def smac_components() -> dict[str, Any]:
    """Define the SMAC3 subclasses on first use, so importing qra_bench.search does not import SMAC3 (and dask)."""
    from scipy.stats import norm
    from smac.acquisition.function.expected_improvement import EI
    from smac.acquisition.maximizer.abstract_acquisition_maximizer import AbstractAcquisitionMaximizer
    from smac.model.abstract_model import AbstractModel

    class PredictorModel(AbstractModel):
        """SMAC3 model backed by a :data:`~qra_bench.search.predictors.Predictor`: mean cost = -quality, variance = std^2."""

        def __init__(self, configspace, owner: "TrustRegionBO", seed: int = 0) -> None:
            super().__init__(configspace, seed=seed)
            self._owner = weakref.proxy(owner)

        @property
        def meta(self) -> dict[str, Any]:
            return {**super().meta, "name": "PredictorModel"}

        def _train(self, X: np.ndarray, Y: np.ndarray) -> "PredictorModel":
            return self  # fitted outside SMAC3: the surrogate layer, or TrustRegionBO's own GPPredictor

        def _predict(self, X: np.ndarray, covariance_type: str | None = "diagonal"):
            if covariance_type not in (None, "diagonal", "std"):
                raise ValueError(f"PredictorModel gives independent marginals only, not covariance {covariance_type!r}")
            mean, std = self._owner._predict_vectors(X)
            second = std if covariance_type == "std" else std**2
            return -mean.reshape(-1, 1), (None if covariance_type is None else second.reshape(-1, 1))

    class ClippedEI(EI):
        """SMAC3's expected improvement (minimizing cost), clipped at 0 instead of raising on round-off."""

        def _compute(self, X: np.ndarray) -> np.ndarray:
            if self._eta is None:
                raise ValueError("EI needs the incumbent's cost: call update(eta=...) first")
            if self._model is None:
                raise ValueError("EI needs a model: call update(model=...) first")
            m, v = self._model.predict_marginalized(X)
            s = np.sqrt(v)
            imp = self._eta - m - self._xi
            z = imp / s
            return np.maximum(imp * norm.cdf(z) + s * norm.pdf(z), 0.0)

    class TrustRegionMaximizer(AbstractAcquisitionMaximizer):
        """Maximizes the acquisition over :meth:`TrustRegionBO.region_candidates` (repaired, feasible, new)."""

        def __init__(self, configspace, owner: "TrustRegionBO", seed: int = 0) -> None:
            super().__init__(configspace, challengers=owner.n_candidates, seed=seed)
            self._owner = weakref.proxy(owner)

        def _maximize(self, previous_configs, n_points: int):
            owner = self._owner
            bi, ri = owner.region_candidates()
            owner._exhausted = len(bi) == 0
            if owner._exhausted:
                # Nothing new fits the budget (at a budget only one configuration meets, say). SMAC3's
                # challenger list indexes its first entry whatever its length, so hand it the centre, whose
                # value is known: _ask returns it with the search converged.
                owner.last_max_ei = 0.0
                b, r = owner.ctx.indices(owner.center)
                return [(0.0, owner._codec.to_configuration(b, r))]
            if self._acquisition_function is None:
                raise ValueError("the maximizer needs an acquisition function")
            configs = [owner._codec.to_configuration(b, r) for b, r in zip(bi, ri)]
            acq = np.asarray(self._acquisition_function(configs), dtype=float).reshape(-1)
            order = np.lexsort((np.arange(len(acq)), -acq))  # best first; ties keep candidate order
            owner.last_max_ei = float(acq[order[0]])
            return [(float(acq[i]), configs[i]) for i in order[:n_points]]

    return {"PredictorModel": PredictorModel, "ClippedEI": ClippedEI, "TrustRegionMaximizer": TrustRegionMaximizer}


def user_trial(codec: Codec, bi: np.ndarray, ri: np.ndarray, seed: Optional[int]) -> TrialInfo:
    """A SMAC3 ``TrialInfo`` for a result told without an ask. It carries the seed SMAC3's intensifier uses for
    asked trials (``seed``; 0 before the first ask, which the intensifier then adopts), so the intensifier
    compares it with them; a trial without a seed would make SMAC3 refuse its runhistory."""
    from smac.runhistory.dataclasses import TrialInfo

    return TrialInfo(config=codec.to_configuration(bi, ri), seed=0 if seed is None else int(seed))


def quiet_smac() -> None:
    """Silence SMAC3's own logger namespace.

    SMAC3 logs every ask at INFO and warns when it falls back to random sampling; quieting its namespace is
    better than letting the facade's ``setup_logging`` rewrite the root logger.
    """
    logging.getLogger("smac").setLevel(logging.ERROR)


def trial_value(value: float) -> TrialValue:
    """A SMAC3 ``TrialValue`` for a told quality: cost = -quality; NaN (a failed trial) is a crashed trial."""
    from smac.runhistory.dataclasses import TrialValue
    from smac.runhistory.enumerations import StatusType

    if math.isnan(value):
        return TrialValue(cost=float("inf"), status=StatusType.CRASHED)
    return TrialValue(cost=-float(value))
