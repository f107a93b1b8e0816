"""Search: the ask/tell optimizer protocol, Stage 1 evolution, Stage 2 trust-region BO, the AutoQRA loop and
the baselines, all sharing one :class:`~qra_bench.memory.MemoryModel` repair and feasibility check.

Importing this package registers every built-in optimizer (see :func:`available_optimizers`); SMAC3 is only
imported when a SMAC3-based optimizer is first asked.

``__all__`` is the public surface: the protocol (:class:`Optimizer`, :class:`SearchContext`, the registry), the
AutoQRA search and the optimizers it is compared with. Building blocks (operators, predictors, NSGA-II
helpers) stay importable from their modules (``qra_bench.search.operators``, ``.predictors``, ``.nsga2``, ...).
"""

from qra_bench.search.base import Observation, Optimizer, Priors, SearchContext, result_value
from qra_bench.search.registry import (
    ENTRY_POINT_GROUP,
    available_optimizers,
    make_optimizer,
    observe_and_suggest,
    register_optimizer,
)
from qra_bench.search.evolution import EvolutionOptimizer, EvolutionSettings, evolve
from qra_bench.search.trust_region import TrustRegionBO
from qra_bench.search.baselines import MilpBaseline, RandomSearch, SMACHPO, UniformBaseline
from qra_bench.search.autoqra import AutoQRAOptimizer, AutoQRASettings, SearchResult, autoqra_search

__all__ = [
    "ENTRY_POINT_GROUP",
    "AutoQRAOptimizer",
    "AutoQRASettings",
    "EvolutionOptimizer",
    "EvolutionSettings",
    "MilpBaseline",
    "Observation",
    "Optimizer",
    "Priors",
    "RandomSearch",
    "SMACHPO",
    "SearchContext",
    "SearchResult",
    "TrustRegionBO",
    "UniformBaseline",
    "autoqra_search",
    "available_optimizers",
    "evolve",
    "make_optimizer",
    "observe_and_suggest",
    "register_optimizer",
    "result_value",
]
