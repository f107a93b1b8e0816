"""The scenario registry: one headline, unknown names are one-line errors naming the available ones, and only
complete scenarios (table, surrogates bound to it, card) are listed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from qra_bench.errors import QRBenchError
from qra_bench.scenarios import SCENARIOS, get_scenario, list_scenarios

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "tiny-news-small"
KEYS = {
    "name",
    "model",
    "task",
    "metric",
    "budget",
    "budget_bytes",
    "table",
    "table_hash",
    "surrogates",
    "card",
    "headline",
}


def test_exactly_one_shipped_scenario_is_the_headline_and_names_are_unique():
    assert sum(s.headline for s in SCENARIOS) == 1
    assert len({s.name for s in SCENARIOS}) == len(SCENARIOS)


def test_an_unknown_scenario_is_a_user_error_listing_the_available_ones():
    with pytest.raises(QRBenchError, match="unknown scenario 'nope'; available:"):
        get_scenario("nope")


def test_a_scenario_without_surrogates_or_card_is_incomplete_and_not_listed(tmp_path):
    tables = tmp_path / "datasets_cache" / "tables"
    tables.mkdir(parents=True)
    shutil.copytree(FIXTURE, tables / "tiny-news")
    news = next(s for s in SCENARIOS if s.name == "tiny-news")
    problems = news.problems(tmp_path)
    assert any("no xgb surrogate" in p for p in problems) and any("no card" in p for p in problems)
    assert "tiny-news" not in [s.name for s in list_scenarios(root=tmp_path)]
    with pytest.raises(QRBenchError, match="not complete"):
        get_scenario("tiny-news", root=tmp_path)


def test_scenarios_json_lists_complete_scenarios_with_their_provenance(cli):
    code, out, err = cli(["scenarios", "--json", "--all"])
    assert code == 0, err
    records = json.loads(out)
    assert {r["name"] for r in records} == {s.name for s in SCENARIOS}
    for r in records:
        assert KEYS <= set(r)
        assert r["complete"] == (not r["problems"])
        if r["complete"]:
            assert r["budget_bytes"] > 0 and len(r["table_hash"]) == 64
    code, out, _ = cli(["scenarios", "--json"])
    listed = json.loads(out)
    assert code == 0 and len(listed) >= 2 and all(r["complete"] for r in listed)
    assert sum(r["headline"] for r in listed) == 1


def test_a_card_of_an_unknown_scenario_exits_2(cli):
    code, _, err = cli(["scenarios", "--card", "nope"])
    assert code == 2 and "unknown scenario" in err


def test_a_named_sample_design_must_be_present_and_is_read_as_configuration_hashes(tmp_path):
    from dataclasses import replace

    from qra_bench.space import QRConfig

    tables = tmp_path / "datasets_cache" / "tables"
    tables.mkdir(parents=True)
    shutil.copytree(FIXTURE, tables / "tiny-news")
    news = replace(next(s for s in SCENARIOS if s.name == "tiny-news"), sample="blind.jsonl")
    assert any("no sample design" in p for p in news.problems(tmp_path))
    cfg = QRConfig((4, 2, 4, 4, 8, 4, 4, 4), (16, 4, 8, 8, 8, 16, 4, 4))
    (tmp_path / "datasets_cache" / "scenarios").mkdir()
    news.sample_path(tmp_path).write_text(json.dumps({"bits": list(cfg.bits), "ranks": list(cfg.ranks)}) + "\n")
    assert not any("no sample design" in p for p in news.problems(tmp_path))
    assert news.sample_hashes(tmp_path) == {cfg.hash}


def test_the_headline_ships_its_sample_design():
    headline = next(s for s in SCENARIOS if s.headline)
    hashes = headline.sample_hashes()
    assert hashes is not None and len(hashes) >= 300


def test_a_sample_with_no_hit_is_reported_as_a_lower_bound_in_the_verdict_too():
    from qra_bench.difficulty import DifficultyCard
    from qra_bench.scenarios import _random_line, _verdict

    card = DifficultyCard(
        metric="eval_loss",
        higher_is_better=False,
        budget_name="b",
        budget_bytes=1,
        noise_std=0.005,
        noise_configs=10,
        n_fitting=100,
        best_uniform=None,
        best_mixed=None,
        advantage=0.07,
        advantage_noise=14.0,
        advantage_se=40.0,
        tolerance=0.01,
        target=4.6,
        n_within=5,
        frac_within=0.05,
        random_evals_to_target=321.0,
        sample_name="band",
        sample_fitting=320,
        sample_within=0,
    )
    assert "needs more than 320 evaluations" in _verdict(card) and "321" not in _verdict(card)
    assert "**more than 320** (no hit among 320)" in _random_line(card)
