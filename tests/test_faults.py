"""Each fault of ``benchmarks/faults.py``, as a test: stand-in trials here, real trials under ``-m slow``.

Two collectors on one table, disk full / read-only / permission denied, a killed dask worker, damaged
artifacts and reversed ranges. Every case runs on scratch copies of the fixture table and is audited:
no row lost, no key stored twice, no unreadable part. The tmpfs cases need root; elsewhere the same
faults are simulated (the benchmark says which).
"""

from __future__ import annotations

import errno
import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

from qra_bench.table import ResultsTable, TableWriteError

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "tiny-news-small"


def _load_faults():
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("faults", REPO / "benchmarks" / "faults.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["faults"] = module
    spec.loader.exec_module(module)
    return module


faults = _load_faults()


def passed(outcome) -> None:
    assert outcome.passed, outcome.line()
    assert outcome.cases > 0 and outcome.audit == faults.Audit()


def test_two_collectors_split_the_jobs_and_a_killed_one_is_taken_over(tmp_path):
    passed(faults.fault_two_collectors(tmp_path, quick=True))


def test_disk_full_read_only_and_permission_denied_stop_with_one_line_and_add_nothing(tmp_path):
    passed(faults.fault_write_errors(tmp_path, quick=True))


def test_enospc_at_fsync_leaves_no_temporary_file_and_no_part(tmp_path, monkeypatch):
    table = tmp_path / "t"
    shutil.copytree(FIXTURE, table)
    before = {p.name: p.read_bytes() for p in table.iterdir()}

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("qra_bench.table.os.fsync", full)
    with pytest.raises(TableWriteError, match=r"No space left on device \(ENOSPC\)") as info:
        ResultsTable(table).append(faults.job_rows("a" * 64, 0))
    assert "\n" not in str(info.value) and str(table) in str(info.value)
    assert {p.name: p.read_bytes() for p in table.iterdir()} == before  # no dotfile, nothing changed
    monkeypatch.undo()
    assert ResultsTable(table).validate().startswith("OK")


def test_damaged_surrogates_and_cards_are_refused_naming_the_file(tmp_path):
    passed(faults.fault_damaged_artifacts(tmp_path, quick=True))


def test_the_shipped_surrogates_are_sealed_and_load():
    from qra_bench.surrogate.artifact import check_sums

    for kind in ("xgb", "gp"):
        sums = check_sums(REPO / "surrogates" / "tiny-news" / kind)
        assert {"manifest.json", "model.pkl"} <= set(sums)


def test_reversed_and_empty_ranges_are_one_line_errors_with_status_2(tmp_path):
    passed(faults.fault_ranges(tmp_path, quick=True))


@pytest.mark.slow
def test_a_dask_worker_killed_mid_trial_is_retried_and_recorded_once(tmp_path):
    pytest.importorskip("distributed")
    passed(faults.fault_dask_worker_killed(tmp_path, quick=True))


@pytest.mark.slow
def test_real_collectors_share_a_table_and_a_killed_dask_worker_is_survived(tmp_path):
    """Real trials (tiny model, 2 steps): two ``qra-bench collect`` at once; a dask collect losing a worker."""
    pytest.importorskip("distributed")
    out = faults.Outcome("real")
    faults._real_two_collectors(tmp_path, out)
    faults._real_dask_collect(tmp_path, out)
    passed(out)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="mounts a tmpfs: needs root")
def test_a_collector_whose_part_write_fails_mid_run_stops_with_status_2(tmp_path):
    """A real trial runs; its part does not fit on the disk: worker and driver both fail, the CLI says one line."""
    out = faults.Outcome("full disk, real trial")
    with faults.tmpfs("2m") as mount:
        if mount is None:
            pytest.skip("tmpfs cannot be mounted here")
        scratch = faults.fixture_copy(mount, "full")
        faults._fill(mount / "filler")
        os.truncate(mount / "filler", (mount / "filler").stat().st_size - 4096)
        faults._collector_on_full_disk(mount, scratch, out, quick=False)
    passed(out)


def test_a_dask_rerun_of_a_trial_whose_rows_are_written_does_not_run_it_again(tmp_path):
    """Dask reruns a task whose worker died even after it wrote its part; the rerun must not add rows."""
    from qra_bench.collect import Job, run_job_once
    from qra_bench.space import QRConfig
    from qra_bench.trial import TrialSettings

    table = tmp_path / "t"
    shutil.copytree(FIXTURE, table)
    frame = ResultsTable(table).read()
    first = frame.iloc[0]
    trial = frame[(frame["config_hash"] == first["config_hash"]) & (frame["seed"] == first["seed"])]
    max_steps = int(first["max_steps"])
    settings = TrialSettings(
        max_steps=max_steps, fidelities=tuple(sorted(int(f) / max_steps for f in trial["fidelity"]))
    )
    config = QRConfig(bits=tuple(first["bits"]), ranks=tuple(first["ranks"]))
    assert config.hash == first["config_hash"] and settings.checkpoints() == sorted(int(f) for f in trial["fidelity"])
    before = sorted(p.name for p in table.iterdir())
    outcome = run_job_once(Job(config, int(first["seed"]), 1, "no-such-model", "no-such-task", settings, str(table)))
    assert outcome.status == "ok" and outcome.part is None and "already in the table" in outcome.error
    assert sorted(p.name for p in table.iterdir()) == before
    # a job whose rows are not there is run (here it cannot even load its model: a setup outcome, no rows)
    other = run_job_once(Job(config, 999, 1, "no-such-model", "no-such-task", settings, str(table)))
    assert other.status == "setup" and sorted(p.name for p in table.iterdir()) == before
