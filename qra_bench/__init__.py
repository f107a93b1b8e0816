"""qra-bench: per-block quantization bit-width and LoRA rank search under a memory budget."""

__version__ = "0.1.0"
