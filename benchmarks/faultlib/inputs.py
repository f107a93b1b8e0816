"""Faults 5 and 6: hostile input through the Python API (the property tests) and reversed ranges on the CLI."""

from __future__ import annotations

from pathlib import Path

from faultlib.common import (
    Outcome,
    REPO,
    expect_error,
    run_cli,
)


# =========================================================================================================
# Faults 5 and 6: hostile input
# =========================================================================================================
def fault_hostile_api(root: Path, quick: bool) -> Outcome:
    """Run every property of ``tests/test_properties.py`` (hypothesis) and count its examples."""
    import importlib.util

    out = Outcome("5 hostile input through the Python API")
    spec = importlib.util.spec_from_file_location("qra_properties", REPO / "tests" / "test_properties.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    properties = [
        (name, fn) for name, fn in vars(module).items() if name.startswith("test_") and hasattr(fn, "hypothesis")
    ]
    for name, fn in properties:
        try:
            fn()
            out.check(True, name)
        except Exception as exc:
            out.check(False, f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:150] if str(exc) else ''}")
    examples = sum(module.EXAMPLES.values())
    out.notes.append(
        f"{len(properties)} properties, {examples} examples, fewest {min(module.EXAMPLES.values(), default=0)}"
    )
    out.check(min(module.EXAMPLES.values(), default=0) >= 200, "a property ran fewer than 200 examples")
    return out


def fault_ranges(root: Path, quick: bool) -> Outcome:
    """Reversed or empty ranges on the command line: one line on stderr, exit status 2, nothing written."""
    out = Outcome("6 reversed or empty ranges")
    target = root / "ranges-out"
    cases = [
        (["collect", "--seeds", "3-1", "--out", str(target)], "seeds range '3-1' is empty"),
        (["collect", "--seeds", ",", "--out", str(target)], "cannot parse seeds"),
        (["collect", "--n", "0", "--out", str(target)], "n must be >= 1"),
        (["bench", "--max-evals", "0", "--out", str(target)], "max evals must be >= 1"),
    ]
    if not quick:
        cases.append(
            (
                [
                    "sweep",
                    "--budgets",
                    "5:1:3",
                    "--surrogate",
                    str(REPO / "surrogates/tiny-news/xgb"),
                    "--table",
                    str(REPO / "tests/fixtures/tiny-news-small"),
                    "--allow-hash-mismatch",
                    "--out",
                    str(target),
                ],
                "must be below HI",
            )
        )
    for args, message in cases:
        code, stderr = run_cli(args, in_process=quick)
        lines = [line for line in stderr.splitlines() if line.strip()]
        out.check(
            code == 2 and len(lines) == 1 and message in lines[0] and not target.exists(),
            f"{' '.join(args[:3])}: rc {code}, {stderr[-200:]!r}",
        )
    from qra_bench.arch import load_arch
    from qra_bench.memory import MemoryModel, MemorySettings
    from qra_bench.space import SearchSpace
    from qra_bench.sweep import parse_budgets

    arch = load_arch("tiny")
    model = MemoryModel(arch, MemorySettings(), SearchSpace(arch.n_blocks))
    for text in ("5:1:3", "0.9xfp16-lora:0.3xfp16-lora:4", "uniform-4bit:uniform-4bit:3", "1:2:0", ","):
        expect_error(out, f"parse_budgets({text!r})", lambda text=text: parse_budgets(text, model), repr(text))
    return out
