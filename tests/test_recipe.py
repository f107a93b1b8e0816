"""A table's trial recipe: rebuilt from what the rows recorded, with overrides; one model and task per table; the
resume guard; importing the module stays free of torch."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from dataclasses import asdict, replace

import pandas as pd
import pytest

from qra_bench.errors import QRBenchError
from qra_bench.recipe import check_recipe, recorded_recipe, settings_from_recipe, table_recipe
from qra_bench.trial import TrialSettings


def _frame(models=("tiny",), tasks=("news",), settings: TrialSettings = TrialSettings()) -> pd.DataFrame:
    n = max(len(models), len(tasks))
    return pd.DataFrame(
        {
            "model_name": [models[i % len(models)] for i in range(n)],
            "task_name": [tasks[i % len(tasks)] for i in range(n)],
            "trial_settings": [settings.to_json()] * n,
        }
    )


def test_the_recorded_recipe_round_trips_and_takes_overrides():
    settings = replace(TrialSettings(), max_steps=40, fidelities=(0.5, 1.0), threads=3)
    recorded = json.loads(settings.to_json())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a recipe of known keys is rebuilt silently
        assert settings_from_recipe(recorded) == settings
    changed = settings_from_recipe(recorded, quant_backend="hqq", group_size=64, steps=8, threads=1)
    assert (changed.quant.backend, changed.quant.group_size, changed.max_steps, changed.threads) == ("hqq", 64, 8, 1)
    assert changed.lora == settings.lora and changed.fidelities == (0.5, 1.0)


def test_unknown_recipe_keys_are_dropped_with_one_warning_naming_them():
    recorded = {**json.loads(TrialSettings().to_json()), "future": 1}
    recorded["quant"] = {**asdict(TrialSettings().quant), "packing": "x"}
    with pytest.warns(UserWarning) as caught:
        settings = settings_from_recipe(recorded)
    assert len(caught) == 1 and "future, quant.packing" in str(caught[0].message)
    assert settings == TrialSettings()
    assert settings_from_recipe({}) == TrialSettings()  # nothing recorded: the defaults


def test_a_table_of_one_model_and_task_gives_its_recipe_and_a_mixed_one_is_one_line():
    settings = replace(TrialSettings(), max_steps=12)
    model, task, recorded = table_recipe(_frame(settings=settings), "t")
    assert (model, task) == ("tiny", "news") and settings_from_recipe(recorded) == settings
    assert recorded_recipe(_frame().iloc[:0]) == {}
    with pytest.raises(QRBenchError, match=r"^table t has 2 values of model_name \(a, b\);[^\n]*$"):
        table_recipe(_frame(models=("a", "b")), "t")
    with pytest.raises(QRBenchError, match="2 values of task_name"):
        table_recipe(_frame(tasks=("news", "bbc")), "t")


def test_the_resume_guard_ignores_threads_and_refuses_another_recipe():
    frame = _frame(settings=replace(TrialSettings(), threads=4))
    check_recipe(frame, model="/some/dir/tiny", task="news", settings=TrialSettings(), table="t")
    with pytest.raises(QRBenchError, match=r"other trial settings \(differing: lr\)"):
        check_recipe(frame, model="tiny", task="news", settings=replace(TrialSettings(), lr=0.5), table="t")
    with pytest.raises(QRBenchError, match="rows of model"):
        check_recipe(frame, model="other", task="news", settings=TrialSettings(), table="t")


def test_importing_the_recipe_module_does_not_import_torch():
    code = "import sys, qra_bench.recipe; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
