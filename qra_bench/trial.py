"""One real trial: quantize block by block -> attach per-block LoRA -> fine-tune -> evaluate.

A trial of ``max_steps`` training steps is evaluated at every fidelity checkpoint (fractions of the run),
so one trial yields a learning curve and one results-table row per checkpoint. Before training it records
the static proxies (the quantized model's task loss and accuracy, held-out LM loss, weight reconstruction
error). It measures memory (storage of every parameter, buffer and quantizer state; peak RSS; peak CUDA
memory) and wall times. On a CUDA device it runs in bf16, on a CPU in float32, with no code change; on a
CPU the same seed and thread count give the same numbers.

How it executes (not part of the recipe; :mod:`qra_bench.execution`): on a CPU the frozen quantized weights
are dequantized once per trial (:mod:`qra_bench.quant.dequant_cache`), the static proxies of a bits vector
already measured by this process are reused, and evaluations run under ``torch.inference_mode``; all give
the same numbers as ``QRA_BENCH_FAST=0``. Without a ``threads`` setting the thread count is capped at the
free cores (:func:`qra_bench.execution.choose_threads`).
"""

from __future__ import annotations

import json
import math
import resource
import time
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Optional, Sequence, cast

import numpy as np
import torch

from qra_bench.lora import LoraSettings, attach_lora
from qra_bench.arch import ArchSpec
from qra_bench.execution import choose_threads, fast_path
from qra_bench.memory import MemoryModel, MemorySettings, storage_layout
from qra_bench.models import BaseModel
from qra_bench.provenance import code_version, host_info, library_versions, utc_now_iso
from qra_bench.quant import QuantSettings, quantize_blocks, storage_bytes
from qra_bench.quant.dequant_cache import install_dequant_cache
from qra_bench.quant.quiet import quiet_stack
from qra_bench.space import QRConfig
from qra_bench.table import TrialRow
from qra_bench.tasks.base import TaskData
from qra_bench.trial_extras import TrialExtras

if TYPE_CHECKING:
    from qra_bench.tasks.sft import SFTTaskData


@dataclass(frozen=True)
class TrialSettings:
    """Fine-tuning and evaluation recipe of a trial (steps, examples, seconds as named).

    fidelities : checkpoints as fractions of ``max_steps``; each yields one table row.
    threads : torch CPU threads for this trial (None: torch's current count, capped at the free cores).
    """

    max_steps: int = 100
    fidelities: tuple[float, ...] = (0.25, 0.5, 1.0)
    batch_size: int = 8
    lr: float = 1e-3
    warmup_steps: int = 10
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    eval_batch_size: int = 200
    # Low-fidelity checkpoints are scored on the first ``partial_eval`` held-out examples only; the full
    # evaluation set is reserved for the final checkpoint and the static proxies (it dominates trial time).
    partial_eval: int = 300
    threads: Optional[int] = None
    quant: QuantSettings = field(default_factory=QuantSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)

    def checkpoints(self) -> list[int]:
        """Training steps at which the model is evaluated (sorted, unique, >= 1)."""
        return sorted({max(1, round(f * self.max_steps)) for f in self.fidelities})

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class Evaluation:
    """Held-out quality of a model: task loss (nats), task accuracy, LM loss (nats/token)."""

    eval_loss: float
    accuracy: float
    lm_loss: float
    focus_accuracy: Optional[float] = None  # accuracy on targets in ``task.focus_token_ids`` (None: no focus set)


@dataclass(frozen=True)
class TrialResult:
    """Everything a trial produced: one row per fidelity checkpoint (last = full fidelity).

    phases : wall time (s) of each phase in order (``copy``, ``quantize``, ``dequant cache``, ``proxy``,
        ``lora``, ``train@<step>``, ``eval@<step>``, ...); ``cpu_phases``: the process CPU time (s, all threads)
        of the same phases. Not recorded in the table; read by the profile benchmark.
    """

    rows: tuple[TrialRow, ...]
    phases: tuple[tuple[str, float], ...] = ()
    cpu_phases: tuple[tuple[str, float], ...] = ()

    @property
    def final(self) -> TrialRow:
        return self.rows[-1]


def compute_device() -> tuple[torch.device, torch.dtype]:
    """CUDA in bf16 when a GPU is present, else CPU in float32."""
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.bfloat16
    return torch.device("cpu"), torch.float32


def memory_settings(trial: TrialSettings, dtype: torch.dtype, seq_len: int) -> MemorySettings:
    """The memory model's settings that describe this trial's real tensors."""
    wbytes = torch.finfo(dtype).bits // 8
    return MemorySettings(
        backend=storage_layout(trial.quant),
        group_size=trial.quant.group_size,
        weight_dtype_bytes=wbytes,
        meta_dtype_bytes=wbytes,
        lora_dtype_bytes=wbytes,
        grad_dtype_bytes=wbytes,
        optimizer_state_bytes=wbytes,
        batch_size=trial.batch_size,
        seq_len=seq_len,
        activation_dtype_bytes=wbytes,
    )


def evaluate(
    model: torch.nn.Module,
    task: TaskData,
    batch_size: int,
    device: torch.device,
    n_eval: Optional[int] = None,
    fast: Optional[bool] = None,
) -> Evaluation:
    """Task loss and accuracy on the first ``n_eval`` held-out prompts (all by default), LM loss on the held-out text.

    ``fast`` (default: :func:`qra_bench.execution.fast_path`) runs under ``torch.inference_mode`` instead of
    ``torch.no_grad``: the same kernels and numbers, less autograd bookkeeping.
    """
    with torch.inference_mode() if (fast_path() if fast is None else fast) else torch.no_grad():
        return _evaluate(model, task, batch_size, device, n_eval)


def _evaluate(
    model: torch.nn.Module, task: TaskData, batch_size: int, device: torch.device, n_eval: Optional[int]
) -> Evaluation:
    was_training = model.training
    model.eval()
    if task.kind == "sft":  # instruction data: response-token loss and accuracy (qra_bench.tasks.sft)
        loss, acc, lm = cast("SFTTaskData", task).evaluate_sft(model, device, n_eval)
        model.train(was_training)
        return Evaluation(eval_loss=loss, accuracy=acc, lm_loss=lm)
    labels = torch.from_numpy(task.label_token_ids).to(device)
    focus = torch.from_numpy(task.focus_token_ids).to(device) if len(task.focus_token_ids) else None
    total_loss, correct, n_targets, focus_hits, focus_count = 0.0, 0, 0, 0, 0
    n = min(n_eval or len(task.eval_prompts), len(task.eval_prompts))
    # lm windows hold (len - 1) targets each, so they go in smaller batches than one-token answers
    step = batch_size if task.kind == "classify" else max(1, batch_size // 4)
    for start in range(0, n, step):
        stop = min(start + step, n)
        ids = torch.from_numpy(task.eval_prompts[start:stop]).to(device)
        if task.kind == "lm":
            loss, hits, count, f_hits, f_count = _lm_loss(model, ids, reduction="sum", focus=focus)
            total_loss, correct, n_targets = total_loss + float(loss), correct + hits, n_targets + count
            focus_hits, focus_count = focus_hits + f_hits, focus_count + f_count
            continue
        gold = torch.from_numpy(task.eval_labels[start:stop]).to(device)
        logits = model(input_ids=ids, logits_to_keep=1).logits[:, -1].float()
        total_loss += float(torch.nn.functional.cross_entropy(logits, labels[gold], reduction="sum"))
        correct += int((logits[:, labels].argmax(dim=1) == gold).sum())
        n_targets += stop - start
    lm_total, lm_tokens = 0.0, 0
    for start in range(0, len(task.lm_ids), max(1, batch_size // 4)):
        ids = torch.from_numpy(task.lm_ids[start : start + max(1, batch_size // 4)]).to(device)
        logits = model(input_ids=ids).logits[:, :-1].float()
        lm_total += float(
            torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum"
            )
        )
        lm_tokens += ids[:, 1:].numel()
    model.train(was_training)
    return Evaluation(
        eval_loss=total_loss / n_targets,
        accuracy=correct / n_targets,
        lm_loss=lm_total / lm_tokens,
        focus_accuracy=focus_hits / focus_count if focus_count else None,
    )


def _lm_loss(
    model: torch.nn.Module, ids: torch.Tensor, reduction: str = "mean", focus: Optional[torch.Tensor] = None
) -> tuple[torch.Tensor, int, int, int, int]:
    """Next-token cross-entropy over every position of ``ids`` (nats), greedy hits, the target count, and the
    hits and count over the targets in ``focus`` (zeros without one)."""
    logits = model(input_ids=ids[:, :-1]).logits.float()
    target = ids[:, 1:]
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction=reduction
    )
    hit = logits.argmax(dim=-1) == target
    if focus is None:
        return loss, int(hit.sum()), target.numel(), 0, 0
    in_focus = torch.isin(target, focus)
    return loss, int(hit.sum()), target.numel(), int((hit & in_focus).sum()), int(in_focus.sum())


def _lr_at(step: int, s: TrialSettings) -> float:
    """Linear warm-up, then cosine decay to zero at ``max_steps`` (step counts from 0)."""
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    progress = (step - s.warmup_steps) / max(1, s.max_steps - s.warmup_steps)
    return s.lr * 0.5 * (1 + math.cos(math.pi * progress))


def _peak_rss_bytes() -> int:
    # ru_maxrss is in KiB on Linux: the process's peak so far (a worker's peak over all its trials).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _identity(base: BaseModel, task: TaskData, config: QRConfig, seed: int, s: TrialSettings, run_id: str) -> dict:
    info = host_info()
    return dict(
        config_hash=config.hash,
        bits=tuple(config.bits),
        ranks=tuple(config.ranks),
        n_blocks=config.n_blocks,
        avg_bits=config.avg_bits,
        avg_rank=config.avg_rank,
        seed=seed,
        max_steps=s.max_steps,
        model_name=base.name,
        model_sha256=base.sha256,
        task_name=task.name,
        task_data_sha256=task.sha256,
        backend=s.quant.backend,
        quant_settings=json.dumps(asdict(s.quant), sort_keys=True),
        trial_settings=s.to_json(),
        lib_versions=json.dumps(library_versions(), sort_keys=True),
        code_version=code_version(),
        host=str(info["hostname"]),
        device=str(info["device"]),
        run_id=run_id,
    )


def failed_rows(
    base: BaseModel,
    task: TaskData,
    config: QRConfig,
    seed: int,
    s: TrialSettings,
    error: str,
    started_at: str,
    seconds: float,
) -> TrialResult:
    """Rows that record a failed trial (one per checkpoint) with its error text."""
    ident = _identity(base, task, config, seed, s, uuid.uuid4().hex)
    rows = tuple(
        TrialRow(
            **ident,
            fidelity=step,
            fidelity_frac=step / s.max_steps,
            status="failed",
            error=error[-2000:] or "failed",
            time_total_s=seconds,
            started_at=started_at,
            finished_at=utc_now_iso(),
        )
        for step in s.checkpoints()
    )
    return TrialResult(rows)


def _set_threads(threads: Optional[int]) -> int:
    """Apply the trial's thread count: ``threads`` as given, else torch's count capped at the free cores."""
    if threads:
        torch.set_num_threads(threads)
    else:
        torch.set_num_threads(max(1, min(torch.get_num_threads(), choose_threads().threads)))
    return torch.get_num_threads()


def train_step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    trainable: Sequence[torch.nn.Parameter],
    task: TaskData,
    ids: torch.Tensor,
    answers: torch.Tensor,
    grad_clip: float,
) -> float:
    """One LoRA optimisation step of the trial recipe on one batch; returns its loss (nats)."""
    if task.kind == "lm":
        loss = _lm_loss(model, ids)[0]
    elif task.kind == "sft":  # instruction data: targets per position (qra_bench.tasks.sft)
        loss = cast("SFTTaskData", task).batch_loss(model, ids, answers)
    else:
        logits = model(input_ids=ids[:, :-1], logits_to_keep=1).logits[:, -1].float()
        loss = torch.nn.functional.cross_entropy(logits, answers)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable, grad_clip)
    opt.step()
    return loss.item()


# Static proxies already measured by this process, by everything they depend on (never the seed or the ranks:
# they are measured before LoRA is attached, in eval mode, where nothing is random).
_PROXIES: "OrderedDict[tuple, Evaluation]" = OrderedDict()
_PROXIES_MAX = 256


def _proxy_key(
    base: BaseModel, task: TaskData, config: QRConfig, s: TrialSettings, device: torch.device, dtype: torch.dtype
) -> tuple:
    return (
        base.name,
        base.sha256,
        task.name,
        task.sha256,
        tuple(config.bits),
        json.dumps(asdict(s.quant), sort_keys=True),
        s.eval_batch_size,
        str(device),
        str(dtype),
        torch.get_num_threads(),
    )


class _Phases:
    """Wall time and process CPU time (s, all threads) of consecutive phases."""

    def __init__(self) -> None:
        self.items: list[tuple[str, float]] = []
        self.cpu: list[tuple[str, float]] = []
        self._t, self._c = time.perf_counter(), time.process_time()

    def mark(self, name: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.items.append((name, now - self._t))
        self.cpu.append((name, cpu - self._c))
        self._t, self._c = now, cpu


def run_trial(
    base: BaseModel,
    task: TaskData,
    config: QRConfig,
    seed: int = 0,
    settings: TrialSettings = TrialSettings(),
    extras: Optional[TrialExtras] = None,
) -> TrialResult:
    """Run one trial and return its rows (one per fidelity checkpoint); ``extras``: options beside the recipe
    (an lm-eval scorer, gradient checkpointing), recorded in ``extra_metrics``."""
    extras = extras or TrialExtras()
    s = settings
    fast = fast_path()
    _set_threads(s.threads)
    t_start = time.perf_counter()
    phases = _Phases()
    started_at = utc_now_iso()
    device, dtype = compute_device()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    model = base.fresh_copy(device, dtype)
    phases.mark("copy")
    qreport = quantize_blocks(model, config.bits, s.quant)
    phases.mark("quantize")
    if fast and device.type == "cpu":
        install_dequant_cache(model, s.quant.backend)
        phases.mark("dequant cache")
    t_proxy = time.perf_counter()
    key = _proxy_key(base, task, config, s, device, dtype)
    proxy = _PROXIES.get(key) if fast else None
    if proxy is None:
        proxy = evaluate(model, task, s.eval_batch_size, device, fast=fast)
        if fast:
            _PROXIES[key] = proxy
            while len(_PROXIES) > _PROXIES_MAX:
                _PROXIES.popitem(last=False)
    time_proxy = time.perf_counter() - t_proxy
    phases.mark("proxy")

    with quiet_stack():  # peft's merge notice for torchao layers, transformers' deprecation that peft triggers
        model = attach_lora(model, config.ranks, s.lora)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=s.lr, weight_decay=s.weight_decay) if trainable else None
    measured_bytes = storage_bytes(model)
    arch = ArchSpec.from_hf_config(base.model.config)
    seq_len = task.seq_len
    breakdown = MemoryModel(arch, extras.memory_settings(memory_settings(s, dtype, seq_len))).breakdown(config)
    model = extras.prepare(model)

    n_train = len(task.train_prompts)
    order = np.concatenate(
        [rng.permutation(n_train) for _ in range(math.ceil(s.max_steps * s.batch_size / n_train) + 1)]
    )
    checkpoints = s.checkpoints()
    ident = _identity(base, task, config, seed, s, uuid.uuid4().hex)
    phases.mark("lora")
    rows, time_train, time_eval, train_losses, tokens = [], 0.0, 0.0, [], 0
    model.train()
    for step in range(s.max_steps):
        t0 = time.perf_counter()
        ids, answers = task.train_batch(order[step * s.batch_size : (step + 1) * s.batch_size])
        ids, answers = ids.to(device), answers.to(device)
        if opt is not None:
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, s)
            train_losses.append(train_step(model, opt, trainable, task, ids, answers, s.grad_clip))
        tokens += ids[:, :-1].numel()
        time_train += time.perf_counter() - t0
        if step + 1 in checkpoints:
            phases.mark(f"train@{step + 1}")
            t0 = time.perf_counter()
            final = step + 1 == checkpoints[-1]
            ev = evaluate(model, task, s.eval_batch_size, device, None if final else s.partial_eval, fast=fast)
            accuracy, extra = extras.score(model, device, ev.accuracy)
            time_eval += time.perf_counter() - t0
            recent = train_losses[-max(1, s.max_steps // 10) :]
            rows.append(
                TrialRow(
                    **ident,
                    fidelity=step + 1,
                    fidelity_frac=(step + 1) / s.max_steps,
                    status="ok",
                    eval_loss=ev.eval_loss,
                    accuracy=accuracy,
                    lm_loss=ev.lm_loss,
                    train_loss=float(np.mean(recent)) if recent else None,
                    extra_metrics=json.dumps(
                        {
                            "block_recon_error": list(qreport.block_recon_error),
                            "base_note": base.note,
                            "n_eval": len(task.eval_prompts) if final else min(s.partial_eval, len(task.eval_prompts)),
                            **(
                                {}
                                if ev.focus_accuracy is None
                                else {"focus_accuracy": ev.focus_accuracy, "proxy_focus_accuracy": proxy.focus_accuracy}
                            ),
                            **extra,
                        }
                    ),
                    proxy_eval_loss=proxy.eval_loss,
                    proxy_accuracy=proxy.accuracy,
                    proxy_lm_loss=proxy.lm_loss,
                    proxy_recon_error=qreport.recon_error,
                    mem_predicted_bytes=breakdown.total,
                    mem_predicted_weights_bytes=breakdown.weights_and_adapters,
                    mem_breakdown=json.dumps(
                        breakdown.to_dict()["terms"] if "terms" in breakdown.to_dict() else breakdown.to_dict()
                    ),
                    mem_measured_param_bytes=measured_bytes,
                    mem_peak_rss_bytes=_peak_rss_bytes(),
                    mem_cuda_peak_bytes=extras.cuda_peak(device),
                    time_quantize_s=qreport.seconds,
                    time_proxy_s=time_proxy,
                    time_train_s=time_train,
                    time_eval_s=time_eval,
                    time_total_s=time.perf_counter() - t_start,
                    tokens_per_s=tokens / time_train if time_train else None,
                    started_at=started_at,
                    finished_at=utc_now_iso(),
                )
            )
            phases.mark(f"eval@{step + 1}")
    return TrialResult(tuple(rows), tuple(phases.items), tuple(phases.cpu))
