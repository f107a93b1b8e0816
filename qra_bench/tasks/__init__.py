"""Fine-tuning tasks with held-out evaluation, all built offline from local files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qra_bench.errors import QRBenchError

if TYPE_CHECKING:  # ``tasks.base`` imports torch; reading a task's main metric must not
    from qra_bench.tasks.base import TaskData

__all__ = ["MAIN_METRICS", "TASKS", "TaskData", "load_task", "main_metric"]

TASKS = ("news", "cipher", "bbc")
#: The metric each task is judged by (benchmarks and fits default to it); other tasks default to accuracy.
MAIN_METRICS = {"news": "eval_loss", "cipher": "eval_loss", "bbc": "accuracy"}


def main_metric(task_name: str) -> str:
    """The main metric of a task: ``eval_loss`` for the LM tasks (lower is better), else ``accuracy``."""
    return MAIN_METRICS.get(task_name, "accuracy")


def __getattr__(name: str) -> Any:
    """``TaskData`` on first use (PEP 562), so importing this package does not import torch."""
    if name == "TaskData":
        from qra_bench.tasks.base import TaskData

        return TaskData
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_task(name: str, tokenizer) -> "TaskData":
    """Build a task's tokenized data for ``tokenizer``."""
    if name == "bbc":
        from qra_bench.tasks.bbc import build_bbc

        return build_bbc(tokenizer)
    if name == "news":
        from qra_bench.tasks.news import build_news

        return build_news(tokenizer)
    if name == "cipher":
        from qra_bench.tasks.cipher import build_cipher

        return build_cipher(tokenizer)
    if name.startswith("sft:"):  # instruction data through ``datasets`` (qra_bench.tasks.sft)
        from qra_bench.tasks.sft import build_sft

        return build_sft(name, tokenizer)
    raise QRBenchError(f"unknown task {name!r}; choose one of {list(TASKS)} or sft:SOURCE (Alpaca-format data)")
