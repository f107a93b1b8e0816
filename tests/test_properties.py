"""Hostile input through the Python API (property-based, hypothesis).

Every property draws arbitrary values, valid and invalid, for one public entry point: a valid input gives
a valid result, every invalid one raises the project's user-error type (:class:`QRBenchError`) with a
one-line message, never another exception (a bare traceback for the user), and nothing is written. Each
property runs at least 200 examples (``EXAMPLES`` counts them; ``benchmarks/faults.py`` reports it). No
torch model is loaded: the benchmark is the table backend over the small fixture table.
"""

from __future__ import annotations

import collections
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qra_bench.errors import QRBenchError
from qra_bench.space import QRConfig, SearchSpace

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "tiny-news-small"
N_EXAMPLES = 200
#: property name -> examples run (in this process)
EXAMPLES: collections.Counter = collections.Counter()

PROPERTY = settings(
    max_examples=N_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# Anything a caller might pass where an int, a list of ints or a string is expected.
scalars = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(-3, 40),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.binary(max_size=4),
)
json_scalars = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(-3, 40),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_lists = st.one_of(
    st.lists(st.integers(-3, 40), max_size=10),
    st.lists(json_scalars, max_size=6),
    json_scalars,
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
int_lists = st.one_of(
    st.lists(st.integers(-3, 40), max_size=10),
    st.lists(scalars, max_size=6),
    st.tuples(st.integers(0, 20), st.integers(0, 20)),
    scalars,
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def user_error_or(call: Callable[[], Any], name: str) -> Any:
    """Run ``call``; return its value, or None when it raised a one-line QRBenchError (counted either way)."""
    EXAMPLES[name] += 1
    try:
        return call()
    except QRBenchError as exc:
        message = str(exc)
        assert message.strip() and "\n" not in message.strip(), f"not one line: {message!r}"
        return None


def _fixture_model():
    from qra_bench.arch import load_arch
    from qra_bench.memory import MemoryModel, MemorySettings

    arch = load_arch("tiny")
    return MemoryModel(arch, MemorySettings(), SearchSpace(arch.n_blocks))


_CACHE: dict[str, Any] = {}


def memory_model():
    if "memory" not in _CACHE:
        _CACHE["memory"] = _fixture_model()
    return _CACHE["memory"]


def benchmark():
    if "bench" not in _CACHE:
        import warnings

        from qra_bench.harness.benchmark import Benchmark

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _CACHE["bench"] = Benchmark.load(FIXTURE, backend="table", budget="fp16-lora")
    return _CACHE["bench"]


# --------------------------------------------------------------------------------------------- configs
@PROPERTY
@given(bits=int_lists, ranks=int_lists)
def test_qrconfig_accepts_valid_blocks_and_refuses_everything_else_with_a_user_error(bits, ranks):
    cfg = user_error_or(lambda: QRConfig(bits=bits, ranks=ranks), "QRConfig")
    if cfg is not None:
        assert len(cfg.bits) == len(cfg.ranks) >= 1
        assert all(isinstance(b, int) and 1 <= b <= 16 for b in cfg.bits)
        assert all(isinstance(r, int) and r >= 0 for r in cfg.ranks)
        assert QRConfig.from_json(cfg.to_json()) == cfg


@PROPERTY
@given(
    n_blocks=scalars,
    bits=int_lists,
    ranks=int_lists,
    text=st.text(max_size=20),
    what=st.sampled_from(["bits", "ranks"]),
)
def test_search_space_construction_and_parsing_raise_only_user_errors(n_blocks, bits, ranks, text, what):
    space = user_error_or(lambda: SearchSpace(n_blocks, bits=bits, ranks=ranks), "SearchSpace")
    if space is not None:
        assert space.n_blocks >= 1 and space.bits and space.ranks
        cfg = space.uniform(space.bits[0], space.ranks[-1])
        assert space.validate(cfg) is cfg
    values = user_error_or(lambda: SearchSpace.parse_ladder_values(text, 4, what), "SearchSpace")
    if values is not None:
        assert len(values) == 4 and all(isinstance(v, int) for v in values)


@PROPERTY
@given(bits=int_lists, ranks=int_lists)
def test_a_space_refuses_configurations_off_its_ladders_with_a_user_error(bits, ranks):
    space = SearchSpace(4, bits=(2, 4, 8), ranks=(0, 8, 16))
    cfg = user_error_or(lambda: space.config(bits, ranks), "SearchSpace.config")
    if cfg is not None:
        assert set(cfg.bits) <= {2, 4, 8} and set(cfg.ranks) <= {0, 8, 16} and cfg.n_blocks == 4


# --------------------------------------------------------------------------------------------- budgets
budget_texts = st.one_of(
    st.text(max_size=24),
    st.builds(
        lambda n, u: f"{n}{u}",
        st.one_of(st.integers(-5, 10**12), st.floats(allow_nan=True, allow_infinity=True)),
        st.sampled_from(["", "B", "KB", "MiB", "GiB", "TB", "xfp16-lora", "x fp16", "bit", "mb"]),
    ),
    st.builds(lambda b: f"uniform-{b}bit", st.integers(-3, 40)),
    st.builds(
        lambda a, b, n: f"{a}:{b}:{n}",
        st.sampled_from(["0.3xfp16-lora", "uniform-2bit", "5", "40MiB", "x"]),
        st.sampled_from(["1.0xfp16-lora", "uniform-4bit", "1", "60MiB", ""]),
        st.integers(-2, 1200),
    ),
)


@PROPERTY
@given(text=budget_texts)
def test_parse_budget_gives_a_positive_size_or_a_user_error(text):
    from qra_bench.memory import parse_budget

    budget = user_error_or(lambda: parse_budget(text, memory_model()), "parse_budget")
    if budget is not None:
        assert isinstance(budget.bytes, int) and budget.bytes >= 1


@PROPERTY
@given(text=budget_texts)
def test_budget_ranges_are_increasing_or_a_user_error(text):
    from qra_bench.sweep import parse_budgets

    budgets = user_error_or(lambda: parse_budgets(text, memory_model()), "parse_budgets")
    if budgets is not None:
        sizes = [b.bytes for b in budgets]
        assert sizes and all(s >= 1 for s in sizes) and (":" not in text or sizes == sorted(sizes))


@PROPERTY
@given(
    text=st.one_of(
        st.text(max_size=12), st.from_regex(r"-?\d{1,3}(-\d{1,3})?(,-?\d{1,3}(-\d{1,3})?){0,3}", fullmatch=True)
    )
)
def test_integer_lists_and_ranges_are_non_empty_or_a_user_error(text):
    from qra_bench.cli import int_list

    values = user_error_or(lambda: int_list(text, "seeds"), "int_list")
    if values is not None:
        assert values and all(isinstance(v, int) for v in values)


# ------------------------------------------------------------------------------------------- objective
@PROPERTY
@given(
    config=st.one_of(
        st.none(),
        st.text(max_size=4),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        st.builds(lambda b, r: QRConfig(bits=(b,) * 8, ranks=(r,) * 8), st.integers(1, 16), st.integers(0, 64)),
        st.builds(lambda b, r: QRConfig(bits=(b,) * 3, ranks=(r,) * 3), st.integers(1, 16), st.integers(0, 64)),
    ),
    fidelity=st.one_of(scalars, st.sampled_from([0.25, 0.5, 1.0, 0.0, -0.5, 1.5])),
    seed=st.one_of(st.integers(-3, 5), scalars),
)
def test_benchmark_objective_answers_or_raises_a_user_error(config, fidelity, seed):
    result = user_error_or(lambda: benchmark().objective(config, fidelity, seed), "Benchmark.objective")
    if result is not None:
        assert result.config == config and 0 < result.fidelity <= 1
        assert math.isfinite(result.eval_loss)


# -------------------------------------------------------------------------------------------- designs
design_lines = st.one_of(
    st.text(max_size=40),
    st.builds(lambda b, r: json.dumps({"bits": b, "ranks": r}), json_lists, json_lists),
    st.builds(
        lambda b, r: json.dumps({"bits": b, "ranks": r}),
        st.lists(st.sampled_from([2, 3, 4, 8, 16]), min_size=1, max_size=8),
        st.lists(st.sampled_from([4, 8, 16]), min_size=1, max_size=8),
    ),
    st.builds(lambda b, r: f'"{b}","{r}"', st.text(max_size=10), st.text(max_size=10)),
    st.just("bits,ranks"),
    st.just("# a comment"),
    st.just(""),
    st.just("["),
    st.just('{"bits": 4}'),
)


@PROPERTY
@given(
    lines=st.lists(design_lines, max_size=5),
    suffix=st.sampled_from([".jsonl", ".json", ".csv", ".txt", ""]),
    raw=st.binary(max_size=16),
)
def test_design_files_give_valid_configurations_or_a_user_error_and_write_nothing(lines, suffix, raw):
    from qra_bench.collect import file_design

    space = SearchSpace(8, bits=(2, 3, 4, 8, 16), ranks=(4, 8, 16))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"design{suffix}"
        path.write_bytes("\n".join(lines).encode() + (raw if not lines else b""))
        configs = user_error_or(lambda: file_design(space, path, anchors=False), "file_design")
        assert os.listdir(folder) == [path.name], "file_design wrote a file"
    if configs is not None:
        assert configs and len({c.hash for c in configs}) == len(configs)
        assert all(space.validate(c) is c for c in configs)


# --------------------------------------------------------------------------------------------- tables
_JSON_OR_NOT = st.one_of(st.text(max_size=8), st.just("{}"), st.just("[1]"), st.none())
row_changes = st.fixed_dictionaries(
    {},
    optional={
        "seed": scalars,
        "fidelity": scalars,
        "max_steps": scalars,
        "status": st.one_of(st.text(max_size=6), st.sampled_from(["ok", "failed"])),
        "eval_loss": scalars,
        "bits": int_lists,
        "ranks": int_lists,
        "n_blocks": scalars,
        "config_hash": st.one_of(st.text(max_size=4), st.none()),
        "finished_at": st.one_of(st.text(max_size=26), st.just("2026-01-01T00:00:00+02:00")),
        "extra_metrics": _JSON_OR_NOT,
        "fidelity_frac": scalars,
        "error": st.one_of(st.none(), st.text(max_size=5)),
    },
)


@PROPERTY
@given(changes=row_changes)
def test_a_row_that_breaks_the_schema_is_refused_and_nothing_is_written(changes):
    from dataclasses import replace

    from qra_bench.table import ResultsTable, TrialRow

    if "template" not in _CACHE:
        _CACHE["template"] = TrialRow.from_dict(ResultsTable(FIXTURE).read().iloc[0].to_dict())
    row = replace(_CACHE["template"], **changes)
    with tempfile.TemporaryDirectory() as folder:
        table = ResultsTable(Path(folder) / "t")
        part = user_error_or(lambda: table.append([row]), "ResultsTable.append")
        files = sorted(os.listdir(table.path)) if table.path.exists() else []
        if part is None:
            assert files == [], f"a refused append left {files}"
        else:
            assert files == [part.name] and len(table.read(include_failed=True)) == 1


def test_every_property_ran_at_least_200_examples():
    """Meaningful after the properties above ran in this process (pytest runs this file in order)."""
    properties = [fn for name, fn in globals().items() if name.startswith("test_") and hasattr(fn, "hypothesis")]
    if not EXAMPLES:
        pytest.skip("run together with the properties")
    assert len(EXAMPLES) >= len(properties) == 9
    assert min(EXAMPLES.values()) >= N_EXAMPLES, dict(EXAMPLES)
