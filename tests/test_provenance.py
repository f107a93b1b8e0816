"""Provenance helpers: library versions from package metadata, host and device, code version, UTC time."""

from __future__ import annotations

from datetime import datetime, timedelta

from qra_bench.provenance import TRACKED_LIBRARIES, code_version, host_info, library_versions, utc_now_iso


def test_library_versions_cover_the_tracked_libraries_and_mark_missing_ones_absent():
    versions = library_versions()
    assert set(versions) == set(TRACKED_LIBRARIES)
    assert versions["pyarrow"] != "absent" and versions["numpy"][0].isdigit()
    assert library_versions(("no-such-distribution-qra",)) == {"no-such-distribution-qra": "absent"}


def test_host_info_names_host_platform_cpus_and_device():
    info = host_info()
    assert set(info) >= {"hostname", "platform", "cpu_count", "device"}
    assert info["cpu_count"] >= 1 and isinstance(info["device"], str) and info["device"]


def test_code_version_starts_with_the_package_version_and_time_is_utc():
    from qra_bench import __version__

    assert code_version().startswith(__version__)
    assert datetime.fromisoformat(utc_now_iso()).utcoffset() == timedelta(0)
