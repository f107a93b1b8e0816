"""The public API: the names ``qra_bench`` exports, imported lazily, and a surrogate benchmark without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import qra_bench

REPO = Path(__file__).resolve().parents[1]
SHIPPED_TABLE = REPO / "datasets_cache" / "tables" / "tiny-news"
SHIPPED_XGB = REPO / "surrogates" / "tiny-news" / "xgb"


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)


def test_every_public_name_resolves_to_its_defining_object():
    from qra_bench.harness.benchmark import Benchmark
    from qra_bench.search.registry import register_optimizer
    from qra_bench.space import QRConfig

    names = set(qra_bench.__all__) - {"__version__"}
    assert names == set(qra_bench._API)  # the literal __all__ (what linters and IDEs read) matches the lazy table
    optional = {"Scenario", "get_scenario", "list_scenarios"}  # the scenario module may not be installed yet
    assert {
        "Benchmark",
        "run_benchmark",
        "register_optimizer",
        "observe_and_suggest",
        "Optimizer",
        "QRConfig",
        "SearchSpace",
        "MemoryModel",
        "ResultsTable",
        "fit_surrogate",
        "SurrogateArtifact",
    } <= names
    for name in sorted(names - optional):
        assert getattr(qra_bench, name) is not None, name
    assert qra_bench.Benchmark is Benchmark and qra_bench.QRConfig is QRConfig
    assert qra_bench.register_optimizer is register_optimizer
    with pytest.raises(AttributeError, match="no attribute 'fill_budget'"):
        qra_bench.fill_budget  # noqa: B018  (internal names are not part of the package's surface)


def test_importing_the_package_is_cheap_and_the_api_import_works():
    result = _python(
        "import sys, qra_bench; before = sorted(m for m in sys.modules if m.startswith(('qra_bench', "
        "'pandas', 'torch')));\n"
        "from qra_bench import Benchmark, register_optimizer, observe_and_suggest, QRConfig\n"
        "import json; print(json.dumps([before, 'torch' in sys.modules]))"
    )
    assert result.returncode == 0, result.stderr
    before, torch_loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert before == ["qra_bench"] and torch_loaded is False


def test_subpackage_all_lists_only_what_they_define_or_import():
    import qra_bench.harness
    import qra_bench.search
    import qra_bench.surrogate

    for package in (qra_bench.harness, qra_bench.search, qra_bench.surrogate):
        assert all(hasattr(package, name) for name in package.__all__), package.__name__
    assert "fill_budget" not in qra_bench.search.__all__ and "observe_and_suggest" in qra_bench.search.__all__


@pytest.mark.skipif(
    not (SHIPPED_TABLE.is_dir() and (SHIPPED_XGB / "manifest.json").is_file()),
    reason="the shipped tiny-news table and surrogate are not in this checkout",
)
def test_a_surrogate_benchmark_never_imports_torch():
    code = (
        "import sys, math\n"
        "from qra_bench import Benchmark\n"
        f"bench = Benchmark.load({str(SHIPPED_TABLE)!r}, backend='surrogate', budget='uniform-4bit', "
        f"surrogate={str(SHIPPED_XGB)!r})\n"
        "result = bench.objective(bench.repair(bench.space.max_config()), fidelity=1.0, seed=0)\n"
        "assert result.backend == 'surrogate' and math.isfinite(result.eval_loss), result\n"
        "print('torch loaded:', 'torch' in sys.modules)\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("torch loaded: False"), result.stdout
