"""Surrogates of the results table: features, an XGBoost ensemble and a Gaussian process, each predicting a
mean and a standard deviation, scored on named splits and saved with a manifest bound to the table's hash.

Typical use::

    from qra_bench.surrogate import SurrogateArtifact, fit_surrogate

    artifact = fit_surrogate("datasets_cache/tables/tiny-news", target="accuracy", model="xgb",
                             out="surrogates/tiny-news/xgb")
    artifact = SurrogateArtifact.load("surrogates/tiny-news/xgb")   # refuses a changed table
    mean, std = artifact.predict_configs(configs)

Modules: ``features`` (encoding), ``xgb`` and ``gp`` (estimators), ``evaluate`` (metrics, splits, noise floor,
learning curve), ``fit`` (table -> artifact), ``artifact`` (save/load, hash binding), ``plots``. ``__all__`` is
the public surface; metrics and helpers stay importable from their modules.
"""

from qra_bench.surrogate.artifact import SurrogateArtifact
from qra_bench.surrogate.features import FeatureEncoder
from qra_bench.surrogate.fit import SURROGATE_KINDS, TARGETS, fit_surrogate, make_estimator
from qra_bench.surrogate.gp import GPSurrogate
from qra_bench.surrogate.xgb import XGBEnsemble

__all__ = [
    "FeatureEncoder",
    "GPSurrogate",
    "SURROGATE_KINDS",
    "SurrogateArtifact",
    "TARGETS",
    "XGBEnsemble",
    "fit_surrogate",
    "make_estimator",
]
