"""How trials execute on this machine (never part of a trial's recipe, so never recorded in ``trial_settings``).

Two execution choices live here:

* the fast path (``QRA_BENCH_FAST``, on by default): the frozen-weight dequantization cache on CPU, reuse of
  static-proxy results across a worker's trials with the same bits, and evaluation under
  ``torch.inference_mode`` in larger batches. Every one gives the same numbers as the plain path (tests
  compare them); ``QRA_BENCH_FAST=0`` switches all of them off, which is how benchmarks measure the old path.
* the default torch thread count: the cores this process may run on (its CPU affinity) minus the cores
  other processes keep busy (the 1-minute load average), at least one. More threads than free cores makes
  OpenMP workers wait on each other, which once stretched a 45 s trial to 813 s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

FAST_ENV = "QRA_BENCH_FAST"
_OFF = ("0", "false", "no", "off")


def fast_path() -> bool:
    """True unless ``QRA_BENCH_FAST`` is set to 0/false/no/off."""
    return os.environ.get(FAST_ENV, "1").strip().lower() not in _OFF


@dataclass(frozen=True)
class ThreadChoice:
    """A thread count and why: ``cores`` this process may use, ``load`` (1-minute load average)."""

    threads: int
    cores: int
    load: float

    def describe(self) -> str:
        return f"{self.threads} thread(s): {self.cores} core(s) available, load {self.load:.1f}"


def affinity_cores() -> int:
    """Logical cores this process may run on (its CPU affinity; ``os.cpu_count()`` where unsupported)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def choose_threads(own_load: float = 0.0) -> ThreadChoice:
    """Threads to use by default: available cores minus those busy with other work, at least one.

    Parameters
    ----------
    own_load : the part of the load average this process itself causes (cores), e.g. the threads of a trial
        it ran just before; it is not counted against the free cores.
    """
    cores = affinity_cores()
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):
        load = 0.0
    busy = max(0.0, load - own_load)
    free = cores - int(busy + 0.5)
    return ThreadChoice(threads=max(1, min(cores, free)), cores=cores, load=load)
