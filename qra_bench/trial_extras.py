"""Trial options outside the recipe: an evaluation hook (lm-eval scoring) and gradient checkpointing.

They are kept out of :class:`~qra_bench.trial.TrialSettings` so that ``trial_settings`` -- the recipe a
results table is resumed against -- is unchanged for every existing table; what they did is recorded in each
row's ``extra_metrics`` instead (``lm_eval`` per-task accuracies, ``grad_checkpointing``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

import torch

from qra_bench.memory import MemorySettings

if TYPE_CHECKING:
    from transformers import PreTrainedModel

#: ``scorer(model, device) -> {task: accuracy}``; an object may also offer ``describe() -> dict``.
Scorer = Callable[[torch.nn.Module, torch.device], dict]


@dataclass(frozen=True)
class TrialExtras:
    """Options of one trial beside its recipe.

    scorer : scores the live model at every checkpoint (e.g. :class:`~qra_bench.tasks.lmeval.LmEvalScorer`);
        the row's ``accuracy`` becomes the mean over its tasks (the paper's Avg) and the task's own accuracy
        moves to ``extra_metrics["task_accuracy"]``.
    grad_checkpointing : recompute block activations in the backward pass (less memory, more time); the
        memory model's activation term follows it.
    """

    scorer: Scorer | None = None
    grad_checkpointing: bool = False
    _cuda: dict = field(default_factory=dict, repr=False, compare=False)  # peaks of the running trial (bytes)

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """Turn on gradient checkpointing when asked (on the transformers model under peft's wrapper).

        On CUDA it also splits the peak memory: what setting up took (the bf16 copy, quantization, the static
        proxies) and, from here on, what fine-tuning and evaluation take -- the memory model's quantity."""
        if torch.cuda.is_available() and any(p.is_cuda for p in model.parameters()):
            torch.cuda.synchronize()
            self._cuda["setup"] = int(torch.cuda.max_memory_allocated())
            torch.cuda.reset_peak_memory_stats()
        if self.grad_checkpointing:
            get_base_model = getattr(model, "get_base_model", None)  # peft's wrapper: look under it
            inner = cast("PreTrainedModel", get_base_model() if get_base_model is not None else model)
            inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            inner.config.use_cache = False
        return model

    def memory_settings(self, settings: MemorySettings) -> MemorySettings:
        """The memory model's settings with this trial's activation checkpointing."""
        return replace(settings, grad_checkpointing=self.grad_checkpointing) if self.grad_checkpointing else settings

    def cuda_peak(self, device: torch.device) -> int | None:
        """Peak CUDA memory of the whole trial so far (bytes; None on a CPU), across the split in :meth:`prepare`."""
        if device.type != "cuda":
            return None
        return max(self._cuda.get("setup", 0), int(torch.cuda.max_memory_allocated()))

    def score(self, model: torch.nn.Module, device: torch.device, task_accuracy: float) -> tuple[float, dict[str, Any]]:
        """(the row's accuracy, entries for ``extra_metrics``) at one checkpoint."""
        extra: dict[str, Any] = {"grad_checkpointing": True} if self.grad_checkpointing else {}
        if device.type == "cuda":  # before lm-eval's own forward passes
            extra["mem_cuda_peak_train_bytes"] = int(torch.cuda.max_memory_allocated())
            extra["mem_cuda_peak_setup_bytes"] = self._cuda.get("setup")
        if self.scorer is None:
            return task_accuracy, extra
        scores = self.scorer(model, device)
        mean = float(sum(scores.values()) / len(scores))
        describe = getattr(self.scorer, "describe", None)
        extra.update(
            lm_eval=scores,
            lm_eval_mean=mean,
            task_accuracy=task_accuracy,
            **({"lm_eval_setup": describe()} if describe else {}),
        )
        return mean, extra


def build_extras(
    eval_tasks: str | None, tokenizer, limit: int | None = None, metric: str = "acc", grad_checkpointing: bool = False
) -> TrialExtras:
    """The extras of the ``--eval``, ``--eval-limit``, ``--eval-metric`` and ``--grad-checkpointing`` options.

    The lm-eval tasks are resolved and their data loaded here, before any training, so an unknown task is a
    :class:`~qra_bench.errors.QRBenchError` that costs nothing.
    """
    scorer = None
    if eval_tasks:
        from qra_bench.tasks.lmeval import (
            LmEvalScorer,
            LmEvalSettings,
            parse_eval_tasks,
        )

        scorer = LmEvalScorer(LmEvalSettings(tasks=parse_eval_tasks(eval_tasks), limit=limit, metric=metric), tokenizer)
    return TrialExtras(scorer=scorer, grad_checkpointing=grad_checkpointing)
