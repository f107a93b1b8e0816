"""Architecture shapes: the linear modules of a decoder block, read from a transformers config.

An :class:`ArchSpec` holds just enough of a LLaMA-family config (LLaMA, Qwen2) to count every parameter
of the model: the seven linear modules per block, their biases, the RMSNorm weights, the embeddings and the
LM head. Presets for the embedded tiny model and for the paper's real backbones ship as HF-compatible config
JSON files in ``qra_bench/presets/``, so the model code can build its ``LlamaConfig`` from the same file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping

from qra_bench.errors import QRBenchError

__all__ = ["ArchSpec", "LinearShape", "list_presets", "load_arch", "LINEAR_NAMES"]

# The seven linears every LLaMA-family block has, in the order peft and the model code name them.
LINEAR_NAMES: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
SUPPORTED_MODEL_TYPES: tuple[str, ...] = ("llama", "qwen2")


@dataclass(frozen=True)
class LinearShape:
    """One ``nn.Linear`` of a block: weight is (out_features, in_features); bias has out_features entries."""

    name: str
    in_features: int
    out_features: int
    bias: bool

    @property
    def weight_params(self) -> int:
        return self.in_features * self.out_features

    @property
    def bias_params(self) -> int:
        return self.out_features if self.bias else 0


@dataclass(frozen=True)
class ArchSpec:
    """Shapes of a LLaMA-family decoder.

    ``attention_bias`` is the bias on q/k/v; ``o_proj_bias`` the bias on o_proj. They differ because LLaMA's
    ``attention_bias`` covers all four attention projections while Qwen2 has q/k/v biases only.
    """

    name: str
    n_blocks: int
    hidden_size: int
    intermediate_size: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab_size: int
    tie_word_embeddings: bool
    attention_bias: bool = False
    mlp_bias: bool = False
    max_position_embeddings: int = 2048
    o_proj_bias: bool = False
    model_type: str = "llama"

    def __post_init__(self) -> None:
        for field in (
            "n_blocks",
            "hidden_size",
            "intermediate_size",
            "n_heads",
            "n_kv_heads",
            "head_dim",
            "vocab_size",
            "max_position_embeddings",
        ):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise QRBenchError(f"architecture {self.name!r}: {field} must be a positive integer, got {value!r}")
        if self.n_heads % self.n_kv_heads:
            raise QRBenchError(
                f"architecture {self.name!r}: n_heads {self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads}"
            )

    # -- shapes ------------------------------------------------------------------------------------------
    def block_linears(self) -> tuple[LinearShape, ...]:
        """The seven linears of one block (GQA: k and v project to n_kv_heads * head_dim)."""
        h, i = self.hidden_size, self.intermediate_size
        q_out, kv_out = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        return (
            LinearShape("q_proj", h, q_out, self.attention_bias),
            LinearShape("k_proj", h, kv_out, self.attention_bias),
            LinearShape("v_proj", h, kv_out, self.attention_bias),
            LinearShape("o_proj", q_out, h, self.o_proj_bias),
            LinearShape("gate_proj", h, i, self.mlp_bias),
            LinearShape("up_proj", h, i, self.mlp_bias),
            LinearShape("down_proj", i, h, self.mlp_bias),
        )

    def block_linear_params(self) -> int:
        """Weight entries of one block's linears (what gets quantized)."""
        return sum(lin.weight_params for lin in self.block_linears())

    def block_norm_params(self) -> int:
        """The two RMSNorm weight vectors of one block (input and post-attention)."""
        return 2 * self.hidden_size

    def block_bias_params(self) -> int:
        return sum(lin.bias_params for lin in self.block_linears())

    def block_extra_params(self) -> int:
        """Parameters of one block that are never quantized: norm weights and linear biases."""
        return self.block_norm_params() + self.block_bias_params()

    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    def lm_head_params(self) -> int:
        """0 when tied: the head reuses the embedding matrix."""
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    def total_params(self) -> int:
        """Every parameter of the base model, as ``sum(p.numel() for p in model.parameters())`` counts it."""
        per_block = self.block_linear_params() + self.block_extra_params()
        return self.n_blocks * per_block + self.embedding_params() + self.hidden_size + self.lm_head_params()

    # -- (de)serialization -------------------------------------------------------------------------------
    @classmethod
    def from_hf_config(cls, config: Any, name: str | None = None) -> "ArchSpec":
        """Read a transformers ``LlamaConfig`` / ``Qwen2Config`` (or a dict of the same keys).

        Missing attributes fall back to transformers' defaults; ``head_dim`` defaults to hidden / heads.
        """
        cfg = SimpleNamespace(**config) if isinstance(config, Mapping) else config
        model_type = getattr(cfg, "model_type", None) or "llama"
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise QRBenchError(f"model_type {model_type!r} not supported; allowed: {', '.join(SUPPORTED_MODEL_TYPES)}")
        hidden = int(cfg.hidden_size)
        n_heads = int(cfg.num_attention_heads)
        n_kv = getattr(cfg, "num_key_value_heads", None) or n_heads
        head_dim = getattr(cfg, "head_dim", None) or hidden // n_heads
        if model_type == "qwen2":
            # Qwen2 hard-codes bias=True on q/k/v and no bias on o_proj or the MLP, whatever the config says.
            attention_bias, o_proj_bias, mlp_bias = True, False, False
        else:
            attention_bias = bool(getattr(cfg, "attention_bias", False))
            o_proj_bias = attention_bias
            mlp_bias = bool(getattr(cfg, "mlp_bias", False))
        return cls(
            name=name or getattr(cfg, "name", None) or getattr(cfg, "_name_or_path", None) or model_type,
            n_blocks=int(cfg.num_hidden_layers),
            hidden_size=hidden,
            intermediate_size=int(cfg.intermediate_size),
            n_heads=n_heads,
            n_kv_heads=int(n_kv),
            head_dim=int(head_dim),
            vocab_size=int(cfg.vocab_size),
            tie_word_embeddings=bool(getattr(cfg, "tie_word_embeddings", False)),
            attention_bias=attention_bias,
            mlp_bias=mlp_bias,
            max_position_embeddings=int(getattr(cfg, "max_position_embeddings", 2048)),
            o_proj_bias=o_proj_bias,
            model_type=model_type,
        )

    @classmethod
    def from_json(cls, path: str | Path, name: str | None = None) -> "ArchSpec":
        """Read an HF-style config JSON (a preset or a model's ``config.json``); name defaults to the file stem."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise QRBenchError(f"cannot read architecture file {str(path)!r}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise QRBenchError(f"architecture file {str(path)!r} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise QRBenchError(f"architecture file {str(path)!r} must hold a JSON object")
        missing = [
            k
            for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
            if k not in data
        ]
        if missing:
            raise QRBenchError(f"architecture file {str(path)!r} lacks {', '.join(missing)}")
        return cls.from_hf_config(data, name=name or data.get("name") or path.stem)

    def to_hf_dict(self) -> dict[str, Any]:
        """The HF config keys this spec determines (round-trips through :meth:`from_hf_config`)."""
        d: dict[str, Any] = {
            "name": self.name,
            "model_type": self.model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.n_blocks,
            "num_attention_heads": self.n_heads,
            "num_key_value_heads": self.n_kv_heads,
            "head_dim": self.head_dim,
            "tie_word_embeddings": self.tie_word_embeddings,
            "max_position_embeddings": self.max_position_embeddings,
        }
        if self.model_type != "qwen2":
            if self.attention_bias != self.o_proj_bias:
                raise QRBenchError(f"architecture {self.name!r}: a llama config cannot bias q/k/v without o_proj")
            d["attention_bias"] = self.attention_bias
            d["mlp_bias"] = self.mlp_bias
        return d

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialize as HF-style config JSON; also write it to ``path`` when given."""
        text = json.dumps(self.to_hf_dict(), indent=2, sort_keys=True) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _preset_dir():
    return resources.files("qra_bench") / "presets"


def list_presets() -> list[str]:
    """Names of the shipped presets (file stems in ``qra_bench/presets``), sorted."""
    return sorted(p.name[: -len(".json")] for p in _preset_dir().iterdir() if p.name.endswith(".json"))


def preset_path(name: str) -> Path:
    """Path of a preset's HF config JSON (the model code builds its config from it)."""
    if name not in list_presets():
        raise QRBenchError(f"unknown architecture preset {name!r}; presets: {', '.join(list_presets())}")
    return Path(str(_preset_dir() / f"{name}.json"))


def load_arch(name_or_path: str | Path) -> ArchSpec:
    """Resolve a preset name or the path of an HF-style config JSON into an :class:`ArchSpec`."""
    text = str(name_or_path)
    if text in list_presets():
        return ArchSpec.from_json(preset_path(text), name=text)
    if Path(text).is_file():
        return ArchSpec.from_json(text)
    raise QRBenchError(
        f"unknown architecture {text!r}: neither a preset nor a JSON file; presets: {', '.join(list_presets())}"
    )
