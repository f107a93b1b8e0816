"""qra-bench: per-block quantization bit-width and LoRA rank search under a memory budget.

The public API, imported on first use (PEP 562), so ``import qra_bench`` is cheap and nothing here imports
torch until a live trial runs::

    from qra_bench import Benchmark, list_scenarios, register_optimizer, observe_and_suggest

Benchmarks
    :class:`Benchmark`, :class:`BenchSpec`, :func:`run_benchmark`; the shipped scenarios
    :func:`list_scenarios`, :func:`get_scenario`, :class:`Scenario`.
Optimizers
    :class:`Optimizer` (ask/tell), :func:`register_optimizer`, :func:`observe_and_suggest`,
    :func:`autoqra_search`.
Problem
    :class:`QRConfig`, :class:`SearchSpace`, :class:`MemoryModel`.
Data
    :class:`ResultsTable`, :func:`fit_surrogate`, :class:`SurrogateArtifact`, :func:`data_root`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_API: dict[str, str] = {
    "Benchmark": "qra_bench.harness.benchmark",
    "BenchSpec": "qra_bench.harness.spec",
    "run_benchmark": "qra_bench.harness.runner",
    "Scenario": "qra_bench.scenarios",
    "get_scenario": "qra_bench.scenarios",
    "list_scenarios": "qra_bench.scenarios",
    "Optimizer": "qra_bench.search.base",
    "register_optimizer": "qra_bench.search.registry",
    "observe_and_suggest": "qra_bench.search.registry",
    "autoqra_search": "qra_bench.search.autoqra",
    "QRConfig": "qra_bench.space",
    "SearchSpace": "qra_bench.space",
    "MemoryModel": "qra_bench.memory",
    "ResultsTable": "qra_bench.table",
    "fit_surrogate": "qra_bench.surrogate.fit",
    "SurrogateArtifact": "qra_bench.surrogate.artifact",
    "data_root": "qra_bench.data",
}
#: Modules imported with a name so that their registrations happen (optimizers, outside optimizers).
_PACKAGES: dict[str, str] = {
    "qra_bench.harness.benchmark": "qra_bench.harness",
    "qra_bench.harness.runner": "qra_bench.harness",
    "qra_bench.harness.spec": "qra_bench.harness",
    "qra_bench.search.base": "qra_bench.search",
    "qra_bench.search.registry": "qra_bench.search",
    "qra_bench.search.autoqra": "qra_bench.search",
}

__all__ = [
    "BenchSpec",
    "Benchmark",
    "MemoryModel",
    "Optimizer",
    "QRConfig",
    "ResultsTable",
    "Scenario",
    "SearchSpace",
    "SurrogateArtifact",
    "__version__",
    "autoqra_search",
    "data_root",
    "fit_surrogate",
    "get_scenario",
    "list_scenarios",
    "observe_and_suggest",
    "register_optimizer",
    "run_benchmark",
]

if TYPE_CHECKING:
    from qra_bench.harness.benchmark import Benchmark
    from qra_bench.harness.runner import run_benchmark
    from qra_bench.harness.spec import BenchSpec
    from qra_bench.data import data_root
    from qra_bench.memory import MemoryModel
    from qra_bench.scenarios import Scenario, get_scenario, list_scenarios
    from qra_bench.search.autoqra import autoqra_search
    from qra_bench.search.base import Optimizer
    from qra_bench.search.registry import observe_and_suggest, register_optimizer
    from qra_bench.space import QRConfig, SearchSpace
    from qra_bench.surrogate.artifact import SurrogateArtifact
    from qra_bench.surrogate.fit import fit_surrogate
    from qra_bench.table import ResultsTable


def __getattr__(name: str) -> Any:
    """Import a public name on first use and cache it in the package namespace."""
    module_name = _API.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if module_name in _PACKAGES:
        importlib.import_module(_PACKAGES[module_name])
    try:
        value = getattr(importlib.import_module(module_name), name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise AttributeError(f"qra_bench.{name} needs {module_name}, which this installation does not have") from exc
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
