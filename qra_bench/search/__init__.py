"""Search: the ask/tell optimizer protocol, Stage 1 evolution, Stage 2 trust-region BO, the AutoQRA loop and
the baselines, all sharing one :class:`~qra_bench.memory.MemoryModel` repair and feasibility check.

Importing this package registers every built-in optimizer (see :func:`available_optimizers`); SMAC3 is only
imported when a SMAC3-based optimizer is first asked.
"""

from qra_bench.search.base import (ENTRY_POINT_GROUP, CountingPredictor, GPPredictor, LinearPredictor, Observation,
                                   Optimizer, Predictor, Priors, SearchContext, as_priors, available_optimizers,
                                   make_optimizer, observe_and_suggest, predictor_from_estimator,
                                   register_optimizer, result_value)
from qra_bench.search.operators import (OPERATORS, atomic_edit, atomic_edit_raw, coupled_mutation, crossover,
                                        fill_budget, importance_mutation, jitter, warm_start)
from qra_bench.search.nsga2 import crowding_distance, hypervolume_2d, non_dominated_sort, select
from qra_bench.search.evolution import ArchiveEntry, EvolutionOptimizer, EvolutionResult, EvolutionSettings, evolve
from qra_bench.search.trust_region import TrustRegionBO
from qra_bench.search.baselines import (UNIFORM_BASELINES, MilpBaseline, RandomSearch, SMACHPO, UniformBaseline,
                                        milp_config)
from qra_bench.search.autoqra import (AutoQRAOptimizer, AutoQRASettings, Candidate, SearchRecord, SearchResult,
                                      autoqra_search, restrict_axes)

__all__ = [
    "ENTRY_POINT_GROUP", "OPERATORS", "UNIFORM_BASELINES",
    "ArchiveEntry", "AutoQRAOptimizer", "AutoQRASettings", "Candidate", "CountingPredictor", "EvolutionOptimizer",
    "EvolutionResult", "EvolutionSettings", "GPPredictor", "LinearPredictor", "MilpBaseline", "Observation",
    "Optimizer", "Predictor", "Priors", "RandomSearch", "SMACHPO", "SearchContext", "SearchRecord", "SearchResult",
    "TrustRegionBO", "UniformBaseline",
    "as_priors", "atomic_edit", "atomic_edit_raw", "autoqra_search", "available_optimizers", "coupled_mutation",
    "crossover", "crowding_distance", "evolve", "fill_budget", "hypervolume_2d", "importance_mutation", "jitter",
    "make_optimizer", "milp_config", "non_dominated_sort", "observe_and_suggest", "predictor_from_estimator",
    "register_optimizer", "restrict_axes", "result_value", "select", "warm_start",
]
