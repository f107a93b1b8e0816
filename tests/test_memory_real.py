"""The memory model against real tensors: quantize a random-init LLaMA block by block with each backend,
attach per-block peft LoRA, and count the bytes every parameter, buffer and quantizer side-state really holds.

Everything the model stores (the two rotary-embedding tables ``inv_freq`` and ``original_inv_freq``
included) must equal the memory model's storage terms byte for byte, per block and in total; the 1%
tolerance the memory model was specified with is also asserted on the raw total.
"""

import pytest
import torch
from torch import nn

from qra_bench.lora import adapter_ranks, attach_lora
from qra_bench.arch import ArchSpec
from qra_bench.memory import MemoryModel, MemorySettings
from qra_bench.quant import QuantSettings, block_linear_modules, decoder_blocks, quantize_blocks, storage_bytes
from qra_bench.space import QRConfig

pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.filterwarnings("ignore:TorchaoLoraLinear was instantiated")
N_BLOCKS = 5
#: Storage terms of the breakdown (all but gradients, optimizer states and activations).
STORAGE_TERMS = (
    "quantized_weights",
    "quant_metadata",
    "unquantized_block_weights",
    "lora_adapters",
    "block_norms_and_biases",
    "embeddings",
    "final_norm",
    "rotary_tables",
    "lm_head",
)
BLOCK_STORAGE_TERMS = (
    "quantized_weights",
    "quant_metadata",
    "unquantized_block_weights",
    "lora_adapters",
    "block_norms_and_biases",
)

# (quantization settings, bits per block, LoRA rank per block); bits 16 = left unquantized, rank 0 = no adapter.
CASES = {
    "torchao": [
        (QuantSettings(backend="torchao"), (2, 3, 4, 8, 16), (4, 0, 8, 2, 16)),
        (QuantSettings(backend="torchao", mapping="asymmetric"), (16, 4, 2, 8, 3), (8, 8, 4, 16, 2)),
        (QuantSettings(backend="torchao"), (3, 16, 16, 2, 5), (1, 2, 4, 8, 16)),
    ],
    "hqq": [
        (QuantSettings(backend="hqq"), (2, 3, 4, 8, 16), (4, 0, 8, 2, 16)),
        (QuantSettings(backend="hqq", hqq_optimize=False), (16, 4, 2, 8, 3), (8, 8, 4, 16, 2)),
        (QuantSettings(backend="hqq", hqq_optimize=False), (3, 3, 16, 16, 2), (1, 2, 4, 8, 16)),
    ],
    "bnb": [
        (QuantSettings(backend="bnb"), (4, 8, 16, 4, 8), (4, 0, 8, 2, 16)),
        (QuantSettings(backend="bnb"), (16, 4, 4, 8, 16), (8, 8, 4, 16, 2)),
        (QuantSettings(backend="bnb", bnb_double_quant=True), (8, 16, 4, 4, 8), (1, 2, 4, 8, 16)),
        (QuantSettings(backend="bnb", bnb_quant_type="fp4"), (4, 4, 16, 8, 4), (16, 4, 0, 0, 8)),
    ],
}
PARAMS = [
    pytest.param(qs, bits, ranks, id=f"{qs.backend}-{i}")
    for backend in CASES
    for i, (qs, bits, ranks) in enumerate(CASES[backend])
]


def tiny_llama(seed: int = 0):
    config = transformers.LlamaConfig(
        vocab_size=512,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=N_BLOCKS,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return transformers.LlamaForCausalLM(config).eval()


def _is_plain_linear(module: nn.Module) -> bool:
    """An untouched float linear (torchao keeps the nn.Linear class but swaps its weight for a tensor subclass;
    bitsandbytes' Linear4bit/Linear8bitLt subclass nn.Linear)."""
    return type(module) is nn.Linear and type(module.weight) is nn.Parameter and module.weight.dtype == torch.float32


def _check_module_types(model: nn.Module, bits, backend: str) -> None:
    for l, (block, b) in enumerate(zip(decoder_blocks(model), bits)):
        for name, (_, _, module) in block_linear_modules(block).items():
            where = f"block {l} ({b} bits) {name}"
            if b == 16:
                assert _is_plain_linear(module), f"{where}: {type(module).__name__} should stay nn.Linear"
                continue
            assert not _is_plain_linear(module), f"{where} was not quantized"
            if backend == "torchao":
                assert type(module.weight).__name__ == "IntxUnpackedToInt8Tensor", where
            elif backend == "hqq":
                assert type(module).__name__ == "HQQLinear", where
            else:
                assert type(module).__name__ == ("Linear4bit" if b == 4 else "Linear8bitLt"), where


@pytest.mark.parametrize("qs, bits, ranks", PARAMS)
def test_real_storage_equals_memory_model(qs, bits, ranks):
    torch.set_num_threads(1)
    base = tiny_llama()
    arch = ArchSpec.from_hf_config(base.config)
    buffers = dict(base.named_buffers())
    assert all(".rotary_emb." in name for name in buffers), sorted(buffers)  # no buffer the model should count
    rotary_bytes = sum(b.untyped_storage().nbytes() for b in buffers.values())
    assert rotary_bytes == arch.head_dim * 4

    quantize_blocks(base, bits, qs)
    _check_module_types(base, bits, qs.backend)
    model = attach_lora(base, ranks)
    assert adapter_ranks(model) == list(ranks)

    memory = MemoryModel(
        arch,
        MemorySettings(
            backend=qs.backend,
            group_size=qs.group_size,
            weight_dtype_bytes=4,
            meta_dtype_bytes=4,
            lora_dtype_bytes=4,
            bnb_double_quant=qs.bnb_double_quant,
        ),
    )
    bd = memory.breakdown(QRConfig(bits, ranks))
    predicted = sum(bd.terms[t] for t in STORAGE_TERMS)
    measured = storage_bytes(model)

    # The specified 1 % tolerance on the raw total, then exactness (rotary tables included).
    assert abs(measured - predicted) <= 0.01 * predicted
    assert measured == predicted
    # Block by block: codes + metadata + 16-bit weights + adapters (the method's M(C) terms, docs/algorithm.md) + norms.
    blocks = decoder_blocks(model)
    for l, block in enumerate(blocks):
        assert storage_bytes(block) == sum(bd.per_block[l][t] for t in BLOCK_STORAGE_TERMS), f"block {l}"
    assert storage_bytes(blocks) == bd.weights_and_adapters + bd.terms["block_norms_and_biases"]
    # Only the adapters train.
    assert storage_bytes(model, trainable_only=True) == bd.terms["lora_adapters"]


def test_hqq_bias_is_counted():
    # HQQLinear keeps its bias as a plain tensor attribute, neither parameter nor buffer.
    from qra_bench.memory import hqq_layout
    from qra_bench.quant import get_backend

    torch.set_num_threads(1)
    torch.manual_seed(0)
    module = get_backend(QuantSettings(backend="hqq", hqq_optimize=False)).quantize_linear(nn.Linear(256, 512), 3)
    codes, meta = hqq_layout(256, 512, 3, MemorySettings(backend="hqq", meta_dtype_bytes=4))
    assert storage_bytes(module) == codes + meta + 512 * 4
