"""ArchSpec: shapes and parameter counts, transformers configs, presets."""

import dataclasses
import json

import pytest
from qra_bench.arch import ArchSpec, list_presets, load_arch, preset_path
from qra_bench.errors import QRBenchError

# Published parameter counts (model cards / sum of numel over the checkpoints).
PUBLISHED_PARAMS = {
    "llama-3.1-8b": 8_030_261_248,
    "llama-3.2-3b": 3_212_749_824,
    "qwen2.5-7b": 7_615_616_512,
    "qwen2.5-3b": 3_085_938_688,
    "smollm2-135m": 134_515_008,
}


def test_presets_are_listed():
    assert set(list_presets()) >= {"tiny", "smollm2-135m", "llama-3.1-8b", "llama-3.2-3b", "qwen2.5-7b", "qwen2.5-3b"}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_preset_parameter_count_matches_published(name):
    assert load_arch(name).total_params() == PUBLISHED_PARAMS[name]


def test_llama_config_gives_the_preset():
    from transformers import LlamaConfig  # imported here: transformers pulls in torch (seconds of CPU)

    cfg = LlamaConfig(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        tie_word_embeddings=False,
        max_position_embeddings=131072,
    )
    assert ArchSpec.from_hf_config(cfg, name="llama-3.1-8b") == load_arch("llama-3.1-8b")


def test_tiny_llama_config_gives_the_preset_and_hf_accepts_the_preset_keys():
    from transformers import LlamaConfig

    data = json.loads(preset_path("tiny").read_text())
    cfg = LlamaConfig(**data)
    assert (cfg.hidden_size, cfg.num_key_value_heads, cfg.head_dim, cfg.tie_word_embeddings) == (256, 2, 64, True)
    assert ArchSpec.from_hf_config(cfg, name="tiny") == load_arch("tiny")


def test_qwen2_config_gives_the_preset_with_qkv_bias_only():
    from transformers import Qwen2Config

    cfg = Qwen2Config(
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        tie_word_embeddings=False,
        max_position_embeddings=131072,
    )
    spec = ArchSpec.from_hf_config(cfg, name="qwen2.5-7b")
    assert spec == load_arch("qwen2.5-7b")
    biased = {lin.name for lin in spec.block_linears() if lin.bias}
    assert biased == {"q_proj", "k_proj", "v_proj"}
    assert spec.head_dim == 128


def test_block_linears_use_gqa_shapes():
    spec = load_arch("llama-3.1-8b")
    shapes = {lin.name: (lin.in_features, lin.out_features) for lin in spec.block_linears()}
    assert shapes == {
        "q_proj": (4096, 4096),
        "k_proj": (4096, 1024),
        "v_proj": (4096, 1024),
        "o_proj": (4096, 4096),
        "gate_proj": (4096, 14336),
        "up_proj": (4096, 14336),
        "down_proj": (14336, 4096),
    }
    assert spec.block_extra_params() == 2 * 4096  # norms only: no biases in LLaMA
    assert spec.lm_head_params() == 128256 * 4096


def test_tied_embeddings_have_no_lm_head():
    assert load_arch("qwen2.5-3b").lm_head_params() == 0
    assert load_arch("tiny").lm_head_params() == 0


def test_json_round_trip(tmp_path):
    for name in ("tiny", "qwen2.5-3b"):
        spec = load_arch(name)
        path = tmp_path / f"{name}.json"
        spec.to_json(path)
        assert load_arch(str(path)) == spec
        assert ArchSpec.from_json(path) == spec


def test_unknown_arch_lists_presets():
    with pytest.raises(QRBenchError, match=r"unknown architecture 'gpt-5'.*presets: .*llama-3.1-8b"):
        load_arch("gpt-5")


def test_bad_arch_file_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(QRBenchError, match="not valid JSON"):
        load_arch(str(bad))
    partial = tmp_path / "partial.json"
    partial.write_text('{"hidden_size": 64}')
    with pytest.raises(QRBenchError, match="lacks"):
        load_arch(str(partial))


def test_spec_rejects_non_positive_sizes():
    spec = load_arch("tiny")
    with pytest.raises(QRBenchError, match="hidden_size"):
        dataclasses.replace(spec, hidden_size=0)
