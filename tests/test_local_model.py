"""Any causal LM from a local directory: a Qwen2-architecture model saved here, fine-tuned and scored."""

from __future__ import annotations

import json

import pytest

from qra_bench.cli import main
from qra_bench.errors import QRBenchError


@pytest.fixture(scope="module")
def qwen2_dir(tmp_path_factory):
    """A small randomly initialised Qwen2 model (q/k/v biases, GQA) with the tiny tokenizer, saved to disk."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from qra_bench.models.tiny import TINY_DIR

    path = tmp_path_factory.mktemp("qwen2")
    tokenizer = AutoTokenizer.from_pretrained(TINY_DIR)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_local_qwen2_directory_trial_with_lm_eval(qwen2_dir, tmp_path):
    from qra_bench.arch import ArchSpec
    from qra_bench.table import ResultsTable

    out = tmp_path / "table"
    main(
        [
            "trial",
            "--model",
            str(qwen2_dir),
            "--task",
            "sft:news-alpaca?n=8&eval_n=2&max_len=96",
            "--bits",
            "4,16,2",
            "--ranks",
            "4",
            "--steps",
            "1",
            "--backend",
            "hqq",
            "--group-size",
            "32",
            "--threads",
            "1",
            "--eval",
            "qra_news_topic",
            "--eval-limit",
            "3",
            "--out",
            str(out),
        ]
    )
    frame = ResultsTable(out).read()
    row = frame.iloc[-1]
    assert row["model_name"] == str(qwen2_dir) and row["n_blocks"] == 3 and row["status"] == "ok"
    assert set(json.loads(row["extra_metrics"])["lm_eval"]) == {"qra_news_topic"}
    arch = ArchSpec.from_hf_config(json.loads((qwen2_dir / "config.json").read_text()))
    assert arch.attention_bias and arch.n_kv_heads == 2  # read from the directory's config
    assert row["mem_predicted_weights_bytes"] > 0


def test_local_directory_errors(tmp_path):
    from qra_bench.models import load_base

    with pytest.raises(QRBenchError, match="has no config.json"):
        load_base(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(QRBenchError, match="model_type 'gpt2' is not supported"):
        load_base(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(QRBenchError, match=r"no \*.safetensors or \*.bin weights"):
        load_base(str(tmp_path))
