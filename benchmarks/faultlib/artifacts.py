"""Fault 4: damaged surrogates, parts and cards, each refused on load with one line naming the file."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path
from typing import Callable

from faultlib.common import (
    Outcome,
    PART_GLOB,
    REPO,
    ResultsTable,
    expect_error,
    fixture_copy,
    job_rows,
)


# =========================================================================================================
# Fault 4: damaged artifacts
# =========================================================================================================
def fault_damaged_artifacts(root: Path, quick: bool) -> Outcome:
    from qra_bench.surrogate.artifact import SurrogateArtifact
    from qra_bench.table_report import verify_card, write_card

    out = Outcome("4 damaged artifacts")
    scratch = fixture_copy(root, "card")
    shipped = REPO / "surrogates" / "tiny-news" / "xgb"

    def copy() -> Path:
        dest = root / f"surrogate-{uuid.uuid4().hex[:8]}"
        shutil.copytree(shipped, dest)
        return dest

    def load(path: Path) -> Callable[[], object]:
        return lambda: SurrogateArtifact.load(path, table_path=scratch.path, allow_hash_mismatch=True)

    intact = load(copy())()
    out.check(intact.target == "eval_loss", "the intact surrogate copy does not load")
    s = copy()
    (s / "model.pkl").write_bytes((s / "model.pkl").read_bytes()[:1000])
    expect_error(out, "truncated model.pkl", load(s), "model.pkl")
    s = copy()
    data = bytearray((s / "model.pkl").read_bytes())
    data[len(data) // 2] ^= 0x01
    (s / "model.pkl").write_bytes(bytes(data))
    expect_error(out, "one bit of model.pkl flipped", load(s), "model.pkl")
    s = copy()
    manifest = json.loads((s / "manifest.json").read_text())
    manifest["training"]["n_rows"] += 1
    (s / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    expect_error(out, "edited manifest metric", load(s), "manifest.json")
    s = copy()
    (s / "manifest.json").write_text((s / "manifest.json").read_text()[:500])
    expect_error(out, "truncated manifest", load(s), "manifest.json")
    s = copy()  # a replaced model with a manifest edited to match it
    (s / "model.pkl").write_bytes(b"not the model")
    manifest = json.loads((s / "manifest.json").read_text())
    manifest["model_file"]["sha256"] = hashlib.sha256(b"not the model").hexdigest()
    (s / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    expect_error(out, "model and manifest replaced together", load(s), "manifest.json")
    s = copy()
    (s / "predictions.csv").write_text((s / "predictions.csv").read_text().replace("1", "2", 1))
    expect_error(out, "edited predictions.csv", load(s), "predictions.csv")
    s = copy()
    (s / "SHA256SUMS").unlink()
    expect_error(out, "missing SHA256SUMS", load(s), "SHA256SUMS")
    s = copy()
    (s / "SHA256SUMS").write_text("garbage\n")
    expect_error(out, "garbled SHA256SUMS", load(s), "SHA256SUMS")
    s = copy()
    expect_error(
        out,
        "surrogate bound to another table",
        lambda: SurrogateArtifact.load(s, table_path=scratch.path),
        str(scratch.path),
    )

    # the card: written once, then each damage on a fresh copy of the table
    write_card(scratch.path, recipe="fault injection")
    out.check(verify_card(scratch.path).startswith("TABLE.md matches"), "the intact card does not verify")

    def table_copy() -> Path:
        dest = root / f"card-{uuid.uuid4().hex[:8]}"
        shutil.copytree(scratch.path, dest)
        return dest

    t = table_copy()
    part = sorted(t.glob(PART_GLOB))[3]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0x01
    part.write_bytes(bytes(data))
    expect_error(out, "a part's bytes changed after the card", lambda: verify_card(t), part.name)
    t = table_copy()
    part = sorted(t.glob(PART_GLOB))[5]
    import pyarrow.parquet as pq

    pq.write_table(pq.read_table(part), part, compression="gzip")  # same rows, other bytes
    out.check(ResultsTable(t).content_hash() == ResultsTable(scratch.path).content_hash(), "re-encoding changed rows")
    expect_error(out, "a part re-encoded with the same rows", lambda: verify_card(t), part.name)
    t = table_copy()
    part = sorted(t.glob(PART_GLOB))[0]
    part.unlink()
    expect_error(out, "a part deleted after the card", lambda: verify_card(t), part.name)
    t = table_copy()
    card = (t / "TABLE.md").read_text()
    digest = card.split("content hash: `")[1][:64]
    (t / "TABLE.md").write_text(card.replace(digest, "0" * 64))
    expect_error(out, "a card whose hash disagrees", lambda: verify_card(t), "TABLE.md")
    t = table_copy()
    (t / "PARTS.sha256").write_text((t / "PARTS.sha256").read_text().replace("a", "b", 1))
    expect_error(out, "an edited parts list", lambda: verify_card(t), "PARTS.sha256")
    t = table_copy()
    ResultsTable(t).append(job_rows("d" * 64, 1))
    expect_error(out, "a part added after the card", lambda: verify_card(t), "TABLE.md")
    t = table_copy()
    with open(sorted(t.glob(PART_GLOB))[1], "r+b") as handle:
        handle.truncate(100)
    expect_error(
        out, "a truncated part (read without a card)", lambda: ResultsTable(t).read(), sorted(t.glob(PART_GLOB))[1].name
    )
    out.audit += scratch.audit()
    return out
