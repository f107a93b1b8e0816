"""Silence the quantization stack's known-harmless notices where they arise, and nothing else.

Every trial used to print them: torchao's optional CUDA/MX extension libraries that a CPU build lacks
("Failed to load ..._C_mxfp8..."), torch's pytree notice that torchao registers Enum constants, bitsandbytes'
missing optional CPU kernel package ("Failed to load CPU gemm_4bit_forward from kernels-community"), peft's
notice that a ``TorchaoLoraLinear`` cannot merge without ``get_apply_tensor_subclass`` (trials never merge),
and transformers' deprecation of ``is_gradient_checkpointing`` that peft triggers. :func:`quiet_stack` is
used only around the imports and calls that emit them; the filters match those messages alone, so any
other warning still shows.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from typing import Iterator

# (logger, message prefix) of each harmless log record
_RECORDS = (
    ("torchao", "Failed to load "),
    ("torch.utils._pytree", "%s is an Enum subclass"),
    ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward from kernels-community"),
)
# (category, message regex) of each harmless warning
_WARNINGS = (
    (UserWarning, r".*was instantiated without `get_apply_tensor_subclass`"),
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),
)


class _DropKnown(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


@contextmanager
def quiet_stack() -> Iterator[None]:
    """Drop the known-harmless records and warnings listed above while the block runs."""
    filters = [(logging.getLogger(name), _DropKnown(prefix)) for name, prefix in _RECORDS]
    for logger, f in filters:
        logger.addFilter(f)
    try:
        with warnings.catch_warnings():
            for category, message in _WARNINGS:
                warnings.filterwarnings("ignore", message=message, category=category)
            yield
    finally:
        for logger, f in filters:
            logger.removeFilter(f)


def import_quietly(*modules: str) -> None:
    """Import ``modules`` (e.g. ``"torchao"``) with their harmless import-time notices dropped."""
    import importlib

    with quiet_stack():
        for name in modules:
            importlib.import_module(name)
