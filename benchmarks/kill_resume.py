"""Kill -9 test of the collector: kill a running `qra-bench collect` at random moments, resume, verify.

The collector is started as a subprocess into a fresh table and SIGKILLed (the driver only, as the OOM
killer or a cluster's preemption would) ``--kills`` times; every kill is followed by a restart of the same
command, and the last run is left to finish. Half of the kills come at a uniformly random delay after the
start, half right after a new part file appears (within a second), where the driver is receiving a finished
trial. Afterwards:

- every part file reads with pyarrow and the table validates;
- every (config_hash, seed, fidelity) appears exactly once in the raw parts (counted before deduplication):
  no trial was written twice, e.g. by a worker orphaned by the kill;
- every key present at any kill is still present: a finished trial is never lost;
- the final table holds the full design (every configuration x seed x checkpoint) as ok rows;
- no worker of a killed driver survived it;
- no lease is left in the table's ``.leases`` folder: a killed driver's leases were taken over by the
  restart (their holder is dead) and every lease was released at the end.

Usage: ``python benchmarks/kill_resume.py [--kills 10] [--n 10] [--workers 2] [--steps 2] [--model tiny]``;
``--quick``: one kill of a 2-configuration design on a 2-block model built on the spot (about a minute).
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def raw_keys(table: Path) -> tuple[list[tuple], list[str]]:
    """(hash, seed, fidelity, status) of every row of every part, and the parts that could not be read."""
    import pyarrow.parquet as pq

    keys, bad = [], []
    for part in sorted(table.glob("part-*.parquet")):
        try:
            t = pq.read_table(part, columns=["config_hash", "seed", "fidelity", "status"])
        except Exception as exc:  # a corrupt part is exactly what this script looks for
            bad.append(f"{part.name}: {exc}")
            continue
        keys += list(zip(*(t.column(c).to_pylist() for c in t.column_names)))
    return keys, bad


def group_alive(pgid: int) -> list[str]:
    """Live (non-zombie) processes of the process group ``pgid``."""
    out = subprocess.run(["ps", "-eo", "pid=,pgid=,stat=,args="], capture_output=True, text=True).stdout
    return [
        line.strip()[:100]
        for line in out.splitlines()
        if line.split()[1] == str(pgid) and not line.split()[2].startswith("Z")
    ]


def small_model(path: Path) -> str:
    """A 2-block LLaMA (hidden 128) with the tiny model's tokenizer, saved to ``path``: trials of seconds."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from qra_bench.models.tiny import TINY_DIR

    tokenizer = AutoTokenizer.from_pretrained(TINY_DIR)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        tie_word_embeddings=True,
        max_position_embeddings=256,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--n", type=int, default=10, help="configurations (random design, no anchors)")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--max-delay", type=float, default=40.0, help="longest random delay before a kill (seconds)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill schedule")
    ap.add_argument("--out", default=None, help="table directory (default: a fresh temporary one)")
    ap.add_argument("--quick", action="store_true", help="one kill, 2 configurations, delays up to 8 s")
    args = ap.parse_args()
    if args.quick:
        args.kills, args.n, args.max_delay = 1, 2, 8.0

    rng = random.Random(args.seed)
    out = Path(args.out or tempfile.mkdtemp(prefix="qra-kill-")) / "table"
    if args.quick:
        sys.path.insert(0, str(REPO))
        args.model = small_model(out.parent / "small-model")
    cmd = [
        sys.executable,
        "-m",
        "qra_bench.cli",
        "collect",
        "--model",
        args.model,
        "--design",
        "random",
        "--n",
        str(args.n),
        "--no-anchors",
        "--seeds",
        args.seeds,
        "--steps",
        str(args.steps),
        "--fidelities",
        "0.5,1.0",
        "--workers",
        str(args.workers),
        "--threads",
        "1",
        "--max-retries",
        "2",
        "--out",
        str(out),
        "--no-progress",
    ]
    print("command:", " ".join(cmd[1:]))
    t_start = time.time()
    seen: set[tuple] = set()
    orphans: list[str] = []
    log = []
    for k in range(args.kills):
        before = len(glob.glob(str(out / "part-*.parquet")))
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=REPO
        )
        t0 = time.time()
        if k % 2 == 0:
            mode, delay = "random", rng.uniform(0.5, args.max_delay)
            time.sleep(delay)
        else:  # right after the next part appears, while the driver takes the result
            mode = "after-part"
            while (
                len(glob.glob(str(out / "part-*.parquet"))) == before
                and proc.poll() is None
                and time.time() - t0 < 4 * args.max_delay
            ):
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.0))
        finished_early = proc.poll() is not None  # nothing left to run: the kill is a no-op
        if not finished_early:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        alive = []
        for _ in range(40):  # workers get SIGKILL from the kernel when their parent dies; allow it to land
            alive = group_alive(proc.pid)
            if not alive:
                break
            time.sleep(0.05)
        if alive:
            orphans += alive
            for line in alive:  # ours: clean up so the next run is not disturbed
                try:
                    os.kill(int(line.split()[0]), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        keys, bad = raw_keys(out)
        seen |= set(keys)
        parts = len(glob.glob(str(out / "part-*.parquet")))
        log.append(
            f"kill {k + 1:2d} ({mode:10s}) after {time.time() - t0:5.1f} s: {parts} parts, {len(set(keys))} keys"
            + (" (run had already exited)" if finished_early else "")
            + (f", {len(bad)} unreadable" if bad else "")
        )
        print(log[-1], flush=True)

    t0 = time.time()
    final = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    print(
        f"final run: exit {final.returncode} after {time.time() - t0:.1f} s: {final.stdout.strip().splitlines()[-1:]}"
    )

    # ---------------------------------------------------------------------------------------------- verify
    from qra_bench.collect import CollectSpec, design_for
    from qra_bench.table import ResultsTable
    from qra_bench.trial import TrialSettings

    settings = TrialSettings(max_steps=args.steps, fidelities=(0.5, 1.0))
    spec = CollectSpec(
        out=str(out),
        model=args.model,
        design="random",
        n=args.n,
        anchors=False,
        seeds=tuple(int(s) for s in args.seeds.split(",")),
        settings=settings,
    )
    expected = {(c.hash, s, f) for s in spec.seeds for c in design_for(spec, settings) for f in settings.checkpoints()}
    keys, bad = raw_keys(out)
    counts = collections.Counter((h, s, f) for h, s, f, status in keys if status == "ok")
    duplicated = {k: c for k, c in counts.items() if c > 1}
    failed_rows = sum(1 for *_, status in keys if status == "failed")
    lost = {k[:3] for k in seen if k[3] == "ok"} - set(counts)
    temporaries = len(list(out.glob(".part-*.tmp")))
    try:
        validation = ResultsTable(out).validate()
    except Exception as exc:
        validation = f"FAILED: {exc}"
    ok_rows = ResultsTable(out).read()
    complete = expected <= set(
        zip(ok_rows["config_hash"], ok_rows["seed"].astype(int), ok_rows["fidelity"].astype(int))
    )

    checks = {
        "final run exit status 0": final.returncode == 0,
        "every part file reads": not bad,
        "every key exactly once in the raw parts": not duplicated,
        "no finished trial lost": not lost,
        "final table holds the full design": complete and len(counts) == len(expected),
        "no worker outlived its killed driver": not orphans,
        "table validates": validation.startswith("OK"),
        "no lease left behind": not list((out / ".leases").glob("*.lease")),
    }
    print()
    print(
        f"kills                      {args.kills} (SIGKILL of the driver; {args.workers} workers, max_steps {args.steps})"
    )
    print(
        f"design                     {args.n} configs x {len(spec.seeds)} seeds x {len(settings.checkpoints())} checkpoints "
        f"= {len(expected)} keys"
    )
    print(f"raw ok rows                {sum(counts.values())} ({len(counts)} distinct keys), failed rows {failed_rows}")
    print(f"duplicated keys            {len(duplicated)}")
    print(f"keys lost after a kill     {len(lost)}")
    print(f"unreadable parts           {len(bad)}; leftover temporary dotfiles (ignored by readers) {temporaries}")
    print(f"orphan workers             {len(orphans)}")
    print(f"table validate             {validation}")
    print(f"total time                 {time.time() - t_start:.0f} s; table {out}")
    for name, passed in checks.items():
        print(f"{'PASS' if passed else 'FAIL'}  {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
