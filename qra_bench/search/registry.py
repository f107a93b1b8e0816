"""The optimizer registry: names to optimizer factories, built-in and from entry points.

:func:`register_optimizer` adds a class (or a factory with the same signature) under a name,
:func:`make_optimizer` builds one by name, and :func:`available_optimizers` lists them, including those other
packages declare under the ``qra_bench.optimizers`` entry-point group. :func:`observe_and_suggest` turns a
plain function into an optimizer class to register, and :func:`named_variant` a class with some keyword
arguments fixed.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from qra_bench.errors import QRBenchError
from qra_bench.memory import Budget, MemoryModel
from qra_bench.search.base import Optimizer, SearchContext
from qra_bench.space import QRConfig, SearchSpace

__all__ = [
    "ENTRY_POINT_GROUP",
    "FunctionContext",
    "available_optimizers",
    "make_optimizer",
    "named_variant",
    "observe_and_suggest",
    "register_optimizer",
]

ENTRY_POINT_GROUP = "qra_bench.optimizers"


@dataclass(frozen=True)
class FunctionContext:
    """What an ``observe_and_suggest`` function may use: the search context and a seeded generator."""

    search: SearchContext
    rng: np.random.Generator

    @property
    def space(self) -> SearchSpace:
        return self.search.space

    def repair(self, cfg: QRConfig) -> QRConfig:
        return self.search.repair(cfg)


def observe_and_suggest(fn: Callable[..., QRConfig], name: Optional[str] = None) -> type[Optimizer]:
    """Turn ``fn(observed, pending)`` (or ``fn(observed, pending, ctx)``) into an :class:`Optimizer` class.

    ``observed`` is a list of ``(QRConfig, quality)`` pairs in tell order, ``pending`` the asked but untold
    configurations. A third parameter receives a :class:`FunctionContext` (space, memory model, budget,
    priors, a seeded ``numpy`` generator and :meth:`SearchContext.repair`). Whatever ``fn`` returns is repaired
    to the budget. Register the result with ``register_optimizer("name")(observe_and_suggest(fn))``.
    """
    n_params = len(
        [p for p in inspect.signature(fn).parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    )
    wants_ctx = n_params >= 3

    class FunctionOptimizer(Optimizer):
        def _ask(self) -> QRConfig:
            observed = [(o.config, o.value) for o in self.history]
            pending = list(self.pending)
            if wants_ctx:
                return fn(observed, pending, FunctionContext(self.ctx, self.rng))
            return fn(observed, pending)

    FunctionOptimizer.name = name if name else str(getattr(fn, "__name__", "function"))
    FunctionOptimizer.__name__ = FunctionOptimizer.__qualname__ = f"ObserveAndSuggest[{FunctionOptimizer.name}]"
    FunctionOptimizer.__doc__ = fn.__doc__
    return FunctionOptimizer


_REGISTRY: dict[str, Callable[..., Optimizer]] = {}
_ENTRY_POINTS_LOADED = False


def register_optimizer(name: str) -> Callable[[Callable[..., Optimizer]], Callable[..., Optimizer]]:
    """Decorator: register an Optimizer class (or a factory with the same signature) under ``name``."""

    def deco(factory: Callable[..., Optimizer]) -> Callable[..., Optimizer]:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise QRBenchError(f"optimizer name {name!r} is already registered to {_REGISTRY[name]!r}")
        _REGISTRY[name] = factory
        return factory

    return deco


def _load_entry_points() -> None:
    """Register optimizers that other packages declare under the ``qra_bench.optimizers`` entry-point group."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _REGISTRY:
            _REGISTRY[ep.name] = ep.load()


def available_optimizers() -> list[str]:
    """Registered optimizer names, built-in and from entry points, sorted."""
    _load_entry_points()
    return sorted(_REGISTRY)


def make_optimizer(
    name: str, space: SearchSpace, memory_model: MemoryModel, budget: "Budget | int | str", seed: int = 0, **kw: Any
) -> Optimizer:
    """Build the optimizer registered as ``name``; ``kw`` goes to its constructor (e.g. ``priors``, ``predictor``)."""
    if name not in _REGISTRY:
        _load_entry_points()
    if name not in _REGISTRY:
        raise QRBenchError(f"unknown optimizer {name!r}; available: {', '.join(available_optimizers())}")
    return _REGISTRY[name](space, memory_model, budget, seed, **kw)


def named_variant(cls: type[Optimizer], name: str, doc: str, **fixed: Any) -> Callable[..., Optimizer]:
    """A registry factory: ``cls`` with some keyword arguments fixed, reporting ``name``."""

    def make(
        space: SearchSpace, memory_model: MemoryModel, budget: "Budget | int | str", seed: int = 0, **kw: Any
    ) -> Optimizer:
        opt = cls(space, memory_model, budget, seed, **fixed, **kw)
        opt.name = name
        return opt

    make.__name__ = f"make_{name.replace('-', '_')}"
    make.__doc__ = doc
    return make
