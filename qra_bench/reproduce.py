"""``qra-bench reproduce table1``: the paper's Table 1 on a real (or the embedded) causal LM.

Every method is fine-tuned on Alpaca-format instruction data (``sft:SOURCE``) and scored with
lm-evaluation-harness on zero-shot multiple-choice tasks; accuracy is the mean over the tasks. Rows:

1. ``LoRA (16-bit)``: every block at 16 bits, rank 16;
2. ``QLoRA (4-bit)``: every block at 4 bits, rank 16;
3. ``Best uniform``: the best measured uniform (bits, rank) pair of the grid whose memory fits the budget;
4. ``AutoQRA``: the surrogate-first search of :mod:`qra_bench.search` (a surrogate fitted on the trials just
   run, AutoQRA's two stages on it, its top candidates promoted to real trials; the best measured one).

Everything is measured in this run; every trial's rows land in ``OUT/trials`` (a results table) and every
Table-1 row names its configuration hash and run id. Written: ``table1.md``, ``table1.csv``,
``reproduce.json`` (the settings, wall times and provenance), ``surrogate/`` and ``trials/``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from qra_bench.errors import QRBenchError

if TYPE_CHECKING:
    from qra_bench.table import TrialRow

GB = 1e9


@dataclass(frozen=True)
class ReproduceSpec:
    """Settings of one Table-1 reproduction (steps, examples and seconds as named).

    sft : the fine-tuning task, ``sft:SOURCE[?options]`` (see :mod:`qra_bench.tasks.sft`).
    eval_tasks : lm-eval tasks, comma-separated (``shipped``: the offline tasks shipped in the package).
    eval_limit : lm-eval examples per task (None: all).
    budget : memory budget, named (``uniform-4bit``, ``0.6xfp16-lora``) or absolute (``3.5GiB``).
    device : ``auto``, ``cpu`` or ``cuda``.
    group_size : quantization group size (None: the largest of 128, 64, 32 that divides every block linear's input).
    uniform_bits, uniform_ranks : the uniform grid searched for the best fitting uniform baseline.
    promote : real trials spent on AutoQRA's top candidates.
    """

    out: str
    model: str = "tiny"
    sft: str = "sft:news-alpaca"
    eval_tasks: str = "shipped"
    eval_limit: int | None = 100
    eval_metric: str = "acc"
    budget: str = "uniform-4bit"
    device: str = "auto"
    steps: int = 50
    batch_size: int = 8
    lr: float | None = None
    backend: str = "torchao"
    group_size: int | None = None
    uniform_bits: tuple[int, ...] = (2, 3, 4, 8, 16)
    uniform_ranks: tuple[int, ...] = (4, 8, 16)
    promote: int = 3
    surrogate: str = "gp"
    generations: int = 6
    stage2_evals: int = 10
    seed: int = 0
    threads: int | None = None
    grad_checkpointing: bool = False


@dataclass(frozen=True)
class MethodRow:
    """One Table-1 row: the method, its configuration and the measured trial's final row."""

    method: str
    row: TrialRow
    fits: bool
    note: str = ""


def _select_device(device: str) -> None:
    """Honour ``--device`` before anything touches CUDA (``cpu`` hides the GPUs from this process)."""
    if device not in ("auto", "cpu", "cuda"):
        raise QRBenchError(f"device {device!r}: use auto, cpu or cuda")
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise QRBenchError("--device cuda, but no CUDA device is available")


def auto_group_size(config) -> int:
    """The largest of 128, 64, 32 dividing the hidden and intermediate sizes (SmolLM2-135M's 576 needs 64)."""
    sizes = (
        int(config.hidden_size),
        int(config.intermediate_size),
        int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)
        * int(config.num_attention_heads),
    )
    return next((g for g in (128, 64, 32) if all(n % g == 0 for n in sizes)), 16)


def trial_settings(spec: ReproduceSpec, group_size: int = 128):
    """The trial recipe of every row: ``spec.steps`` steps, one evaluation at the end."""
    from qra_bench.quant import QuantSettings
    from qra_bench.trial import TrialSettings

    base = TrialSettings()
    return replace(
        base,
        max_steps=spec.steps,
        fidelities=(1.0,),
        batch_size=spec.batch_size,
        warmup_steps=min(base.warmup_steps, max(1, spec.steps // 10)),
        lr=spec.lr or base.lr,
        threads=spec.threads,
        quant=replace(QuantSettings(), backend=spec.backend, group_size=group_size),
    )


def _extra_metrics(row: TrialRow) -> dict:
    assert row.extra_metrics is not None, "a measured trial's row carries its extra metrics"
    return json.loads(row.extra_metrics)


def _metric_names(row: TrialRow) -> dict[str, float]:
    return _extra_metrics(row)["lm_eval"]


def run_reproduce(spec: ReproduceSpec, echo: Callable[[str], None] = print) -> dict:
    """Run the four methods and write Table 1; returns ``reproduce.json``'s content.

    Every user error (model, data, tasks, budget) is raised before anything is written or trained.
    """
    t_start = time.perf_counter()
    _select_device(spec.device)
    from qra_bench.arch import ArchSpec
    from qra_bench.memory import MemoryModel
    from qra_bench.models import load_base
    from qra_bench.space import SearchSpace
    from qra_bench.table import ResultsTable
    from qra_bench.tasks import load_task
    from qra_bench.trial import compute_device, memory_settings, run_trial
    from qra_bench.trial_extras import build_extras

    out = Path(spec.out)
    if out.exists() and any(out.iterdir()):
        raise QRBenchError(f"output folder {out} is not empty; give a new --out")
    if spec.promote < 1:
        raise QRBenchError(f"--promote {spec.promote}: AutoQRA needs at least one real trial")
    base = load_base(spec.model)
    settings = trial_settings(spec, spec.group_size or auto_group_size(base.model.config))
    task = load_task(spec.sft if spec.sft.startswith("sft:") else f"sft:{spec.sft}", base.tokenizer)
    extras = build_extras(spec.eval_tasks, base.tokenizer, spec.eval_limit, spec.eval_metric, spec.grad_checkpointing)
    device, dtype = compute_device()
    arch = ArchSpec.from_hf_config(base.model.config)
    space = SearchSpace(arch.n_blocks)  # the paper's ladders: bits 2/3/4/8/16, ranks 4/8/16
    bad = sorted(set(spec.uniform_bits) - set(space.bits)) + sorted(set(spec.uniform_ranks) - set(space.ranks))
    if bad:
        raise QRBenchError(f"uniform grid values {bad} are off the ladders: bits {space.bits}, ranks {space.ranks}")
    mm = MemoryModel(arch, extras.memory_settings(memory_settings(settings, dtype, task.seq_len)), space)
    budget = mm.budget(spec.budget)
    echo(f"model {base.name} ({arch.n_blocks} blocks) on {device.type} ({dtype}); task {task.name}: {task.description}")
    echo(
        f"budget {spec.budget} = {budget.bytes / GB:.3f} GB (memory model, {settings.batch_size} x {task.seq_len} tokens)"
    )
    table = ResultsTable(out / "trials")
    measured: dict[str, TrialRow] = {}

    def real(cfg) -> TrialRow:
        if cfg.hash in measured:
            return measured[cfg.hash]
        t0 = time.perf_counter()
        result = run_trial(base, task, cfg, spec.seed, settings, extras)
        table.append(list(result.rows))
        row = result.final
        measured[cfg.hash] = row
        echo(
            f"  trial avg bits {cfg.avg_bits:.2f} avg rank {cfg.avg_rank:.1f}: accuracy {row.accuracy:.4f} "
            f"({', '.join(f'{k} {v:.3f}' for k, v in _metric_names(row).items())}) in {time.perf_counter() - t0:.1f} s"
        )
        return row

    def measured_accuracy(cfg) -> float:
        acc = real(cfg).accuracy
        assert acc is not None, "a measured trial's row carries its accuracy"
        return acc

    # 1-3: the baselines and the uniform grid (only pairs that fit; the two fixed baselines always)
    rows: list[MethodRow] = []
    lora16, qlora4 = space.uniform(16, 16), space.uniform(4, 16)
    rows.append(MethodRow("LoRA (16-bit, r16)", real(lora16), mm.is_feasible(lora16, budget)))
    rows.append(MethodRow("QLoRA (4-bit, r16)", real(qlora4), mm.is_feasible(qlora4, budget)))
    fitting = [
        space.uniform(b, r)
        for b in spec.uniform_bits
        for r in spec.uniform_ranks
        if mm.is_feasible(space.uniform(b, r), budget)
    ]
    if not fitting:
        raise QRBenchError(
            f"no uniform configuration of bits {spec.uniform_bits} x ranks {spec.uniform_ranks} fits "
            f"the budget {spec.budget}; raise it"
        )
    best_uniform = max(fitting, key=lambda c: (real(c).accuracy, -mm.total_bytes(c)))  # ties: the smaller memory
    rows.append(
        MethodRow(
            f"Best uniform ({best_uniform.bits[0]}-bit, r{best_uniform.ranks[0]})",
            real(best_uniform),
            True,
            f"best of {len(fitting)} fitting uniform pairs",
        )
    )
    # 4: AutoQRA on a surrogate fitted on the trials just run, top candidates promoted to real trials
    outcome = _autoqra(spec, out, table, budget.bytes, lambda cfgs: [measured_accuracy(c) for c in cfgs], echo)
    best = max((c for c in outcome.candidates if c[3] is not None), key=lambda c: c[3])[0]
    rows.append(
        MethodRow(
            "AutoQRA",
            real(best),
            mm.is_feasible(best, budget),
            f"best measured of {outcome.n_real_evals} promoted candidates",
        )
    )
    wall = time.perf_counter() - t_start
    record = {
        "spec": asdict(spec),
        "budget_bytes": budget.bytes,
        "device": device.type,
        "dtype": str(dtype),
        "model_name": base.name,
        "model_sha256": base.sha256,
        "task_name": task.name,
        "task_data_sha256": task.sha256,
        "n_trials": len(measured),
        "wall_s": wall,
        "trials_table": str(out / "trials"),
        "autoqra": {
            "candidates": [
                {"hash": c[0].hash, "predicted": c[1], "std": c[2], "measured": c[3]} for c in outcome.candidates[:10]
            ],
            "surrogate": spec.surrogate,
        },
    }
    write_table1(out, rows, mm, spec, record)
    echo((out / "table1.md").read_text())
    echo(
        f"wrote {out / 'table1.md'}, {out / 'table1.csv'}, {out / 'reproduce.json'}; {len(measured)} trials in {wall:.1f} s"
    )
    return record


def _autoqra(
    spec: ReproduceSpec,
    out: Path,
    table,
    budget_bytes: int,
    real_eval: Callable[[list], Sequence[float]],
    echo: Callable[[str], None],
):
    """Fit ``spec.surrogate`` on the table, then AutoQRA (Stage 1 + 2 on the surrogate, ``spec.promote`` real trials)."""
    from qra_bench.search.surrogate_search import (
        load_problem,
        search_budget,
        search_settings,
    )
    from qra_bench.surrogate.fit import fit_surrogate

    t0 = time.perf_counter()
    try:
        fit_surrogate(
            table.path,
            target="accuracy",
            model=spec.surrogate,
            out=out / "surrogate",
            seed=spec.seed,
            fidelity="full",
            arch=spec.model if Path(spec.model).is_dir() else None,
        )
    except QRBenchError:
        raise
    except Exception as exc:  # a fit on a handful of trials: say which step failed
        raise QRBenchError(
            f"fitting the {spec.surrogate} surrogate on {table.path} failed: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    problem = load_problem(
        table.path, out / "surrogate", arch=spec.model if Path(spec.model).is_dir() else None, backend=None
    )
    echo(f"surrogate ({spec.surrogate}) fitted on {len(problem.frame)} rows in {time.perf_counter() - t0:.1f} s")
    outcome = search_budget(
        problem,
        int(budget_bytes),
        "autoqra",
        spec.seed,
        settings=search_settings(spec.generations, spec.stage2_evals),
        real_eval=real_eval,
        real_evals=spec.promote,
        refit=problem.refit,
    )
    echo(
        f"AutoQRA: {outcome.n_predictor_rows} surrogate predictions, {outcome.n_real_evals} real trials, "
        f"{outcome.wall_s:.1f} s"
    )
    return outcome


def _cells(r: MethodRow, mm, tasks: list[str]) -> dict:
    row = r.row
    scores = _metric_names(row)
    from qra_bench.space import QRConfig

    cfg = QRConfig(tuple(row.bits), tuple(row.ranks))
    return {
        "Method": r.method,
        "AvgBit": row.avg_bits,
        "AvgRank": row.avg_rank,
        "Mem (GB)": mm.total_bytes(cfg) / GB,
        **{t: scores.get(t, math.nan) for t in tasks},
        "Avg": row.accuracy,
    }


def compact(values: Sequence[int]) -> str:
    """Per-block values with runs collapsed: ``(4, 4, 4, 8, 2)`` -> ``"4x3 8 2"``."""
    runs: list[list[int]] = []
    for v in values:
        if runs and runs[-1][0] == v:
            runs[-1][1] += 1
        else:
            runs.append([v, 1])
    return " ".join(f"{v}x{n}" if n > 1 else str(v) for v, n in runs)


def write_table1(out: Path, rows: list[MethodRow], mm, spec: ReproduceSpec, record: dict) -> None:
    """``table1.md`` (the paper's layout plus provenance), ``table1.csv`` and ``reproduce.json`` in ``out``."""
    import pandas as pd

    tasks = sorted(_metric_names(rows[0].row))
    frame = pd.DataFrame([_cells(r, mm, tasks) for r in rows])
    prov = pd.DataFrame(
        [
            {
                "fits_budget": r.fits,
                "note": r.note,
                "config_hash": r.row.config_hash,
                "run_id": r.row.run_id,
                "bits": " ".join(map(str, r.row.bits)),
                "ranks": " ".join(map(str, r.row.ranks)),
                "mem_predicted_bytes": r.row.mem_predicted_bytes,
                "mem_cuda_peak_bytes": r.row.mem_cuda_peak_bytes,
                "eval_loss": r.row.eval_loss,
                "train_loss": r.row.train_loss,
                "time_total_s": r.row.time_total_s,
                "model_name": r.row.model_name,
                "model_sha256": r.row.model_sha256,
                "task_name": r.row.task_name,
                "task_data_sha256": r.row.task_data_sha256,
                "device": r.row.device,
                "code_version": r.row.code_version,
            }
            for r in rows
        ]
    )
    pd.concat([frame, prov], axis=1).to_csv(out / "table1.csv", index=False)
    head = "| " + " | ".join(frame.columns) + " |"
    lines = [
        f"# Table 1: {record['model_name']} fine-tuned on {record['task_name']}",
        "",
        f"Budget {spec.budget} = {record['budget_bytes'] / GB:.4f} GB (memory model); device {record['device']} "
        f"({record['dtype']}); {spec.steps} steps x batch {spec.batch_size}; lm-eval {spec.eval_metric}, "
        f"limit {spec.eval_limit} per task; seed {spec.seed}.",
        "",
        head,
        "|" + "|".join("---" for _ in frame.columns) + "|",
    ]
    for rec, r in zip(frame.to_dict("records"), rows):
        vals = (
            [
                rec["Method"] + ("" if r.fits else " (over budget)"),
                f"{rec['AvgBit']:.2f}",
                f"{rec['AvgRank']:.1f}",
                f"{rec['Mem (GB)']:.4f}",
            ]
            + [f"{100 * rec[t]:.1f}" for t in tasks]
            + [f"{100 * rec['Avg']:.1f}"]
        )
        lines.append("| " + " | ".join(vals) + " |")
    lines += [
        "",
        "Accuracies in %; Mem is the memory model's prediction of training memory. Provenance "
        "(trials in `trials/`, one results-table row each):",
        "",
        "| Method | config_hash | run_id | bits per block | ranks per block | measured CUDA peak (GB) | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        train = _extra_metrics(r.row).get("mem_cuda_peak_train_bytes")
        peak = (
            "n/a (CPU)"
            if r.row.mem_cuda_peak_bytes is None
            else f"{r.row.mem_cuda_peak_bytes / GB:.4f}"
            + (f" (fine-tuning {train / GB:.4f}, {train / r.row.mem_predicted_bytes:.2f}x predicted)" if train else "")
        )
        lines.append(
            f"| {r.method} | {r.row.config_hash[:12]} | {r.row.run_id[:12]} | {compact(r.row.bits)} | "
            f"{compact(r.row.ranks)} | {peak} | {r.note} |"
        )
    lines += [
        "",
        f"Model sha256 {record['model_sha256']}; data sha256 {record['task_data_sha256']}; "
        f"{record['n_trials']} trials, wall {record['wall_s']:.1f} s.",
    ]
    (out / "table1.md").write_text("\n".join(lines) + "\n")
    (out / "reproduce.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
