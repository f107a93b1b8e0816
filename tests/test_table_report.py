"""TABLE.md is computed from the rows: counts, repeats, anchors, CPU hours, phase times and the content hash."""

from __future__ import annotations

import json

from qra_bench.table import ResultsTable
from qra_bench.table_report import CARD_FILE, table_card, write_card
from tests.test_table import failed_row, make_row


def _rows():
    rows = []
    for seed in (0, 1, 2):  # one config over three seeds, two checkpoints each
        rows += [
            make_row(
                "cfg-a",
                seed,
                f,
                fidelity_frac=f / 400,
                time_total_s=f * 0.9,
                trial_settings=json.dumps({"threads": 2}),
                run_id=f"r{seed}",
            )
            for f in (200, 400)
        ]
    # a uniform anchor, 4 bits rank 16 on every block
    rows.append(
        make_row(
            "cfg-u",
            0,
            400,
            bits=(4, 4, 4),
            ranks=(16, 16, 16),
            fidelity_frac=1.0,
            time_total_s=360.0,
            trial_settings=json.dumps({}),
            run_id="r3",
        )
    )
    rows.append(failed_row("cfg-f", 0, 400, fidelity_frac=1.0, time_total_s=36.0, run_id="r4"))
    return rows


def test_card_counts_repeats_anchors_and_cpu_hours_from_the_rows(tmp_path):
    ResultsTable(tmp_path).append(_rows())
    card = table_card(tmp_path, recipe="`collect_tiny.sh`")
    assert "trials with ok rows (config, seed): **4**" in card
    assert "configs with >= 3 seeds at full fidelity: **1**" in card
    assert "4b-r16" not in card.split("missing:")[1]  # present, so not listed as missing
    # 3 trials x 360 s x 2 threads + 360 s x 1 thread + the failed 36 s = 2556 s
    assert f"**{2556 / 3600:.2f}** core-hours" in card
    assert ResultsTable(tmp_path).content_hash() in card
    assert "`collect_tiny.sh`" in card
    # every ok full-fidelity row took 360 s in all: the median phase line says so (failed rows do not count)
    assert "median wall seconds of a full-fidelity trial: " in card and "total 360.0" in card


def test_write_card_puts_table_md_beside_the_parts_without_changing_the_table(tmp_path):
    table = ResultsTable(tmp_path)
    table.append(_rows())
    before = table.content_hash()
    path = write_card(tmp_path)
    assert path.name == CARD_FILE and path.parent == tmp_path
    assert table.content_hash() == before
    assert table.validate()


def test_refreshing_the_card_without_a_recipe_keeps_the_recorded_one(tmp_path):
    table = ResultsTable(tmp_path)
    table.append(_rows())
    write_card(tmp_path, recipe="Collected with `collect_tiny.sh`, anchors first.\n\nThen the stratified design.")
    text = write_card(tmp_path).read_text()
    assert "Collected with `collect_tiny.sh`, anchors first.\n\nThen the stratified design.\n\n## Contents" in text
    assert "Something else." in write_card(tmp_path, recipe="Something else.").read_text()
    assert "anchors first" not in (tmp_path / CARD_FILE).read_text()
