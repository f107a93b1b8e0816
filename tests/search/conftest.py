"""Shared fixtures of the search tests: real architectures and memory models, and the analytic stand-in.

The stand-in (:class:`AnalyticStandIn` of ``tests/standin.py``) is a made-up quality function used in place
of a fitted surrogate; numbers computed with it test the algorithms and are never results.
"""

import pytest

from qra_bench.arch import load_arch
from qra_bench.memory import MemoryModel
from standin import AnalyticStandIn


class Problem:
    """An architecture's memory model, its space, the stand-in predictor and priors derived from it."""

    def __init__(self, arch: str) -> None:
        self.arch = arch
        self.mm = MemoryModel(load_arch(arch))
        self.space = self.mm.space
        self.standin = AnalyticStandIn(self.space)
        self.priors = self.standin.priors()

    def budget(self, text: str):
        return self.mm.budget(text)


@pytest.fixture(scope="session")
def tiny() -> Problem:
    return Problem("tiny")


@pytest.fixture(scope="session")
def llama() -> Problem:
    return Problem("llama-3.1-8b")


@pytest.fixture(scope="session", params=["tiny", "llama-3.1-8b"])
def problem(request, tiny, llama) -> Problem:
    return tiny if request.param == "tiny" else llama
