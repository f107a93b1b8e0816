"""experiments/headline_design.py: the ``best`` design on a table, read in the table's own memory model."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
import headline_design as hd  # noqa: E402

from qra_bench.difficulty import config_means  # noqa: E402
from qra_bench.harness import Benchmark  # noqa: E402
from qra_bench.table import ResultsTable  # noqa: E402

TABLE = str(Path(__file__).resolve().parents[1] / "fixtures" / "tiny-news-small")


def _fitting_means(budget: str) -> pd.DataFrame:
    limit = Benchmark.load(TABLE, backend="table", budget=budget).budget.bytes
    frame = ResultsTable(TABLE).read()
    means = config_means(frame[frame["status"] == "ok"], "eval_loss")
    return means[means["memory"] <= limit].sort_values("mean")


def test_best_design_lists_the_best_fitting_configurations_in_order():
    means = _fitting_means("uniform-4bit")
    configs = hd.best_fitting(TABLE, 3, "uniform-4bit")
    assert [c.bits for c in configs] == list(means["bits"][:3])
    assert [c.ranks for c in configs] == list(means["ranks"][:3])


def test_best_design_can_add_the_best_fitting_uniform_configuration():
    means = _fitting_means("uniform-4bit")
    uniform = means[[len(set(b)) == 1 and len(set(r)) == 1 for b, r in zip(means["bits"], means["ranks"])]]
    configs = hd.best_fitting(TABLE, 1, "uniform-4bit", uniform=True)
    best_uniform = (uniform["bits"].iloc[0], uniform["ranks"].iloc[0])
    assert (configs[-1].bits, configs[-1].ranks) == best_uniform
    assert len(configs) == (1 if (means["bits"].iloc[0], means["ranks"].iloc[0]) == best_uniform else 2)
