"""Instruction fine-tuning on Alpaca-format data loaded with ``datasets`` (task ``sft:SOURCE``).

``SOURCE`` is a local JSON / JSON-lines / Parquet / CSV file, a local directory of such files, a hub
dataset name (where the network allows), or ``news-alpaca`` (the shipped file built from held-out news by
:mod:`qra_bench.tasks.build_data`). Options follow a ``?`` like a URL query::

    sft:data/alpaca.jsonl?max_len=256&loss=all&n=200&eval_n=64&split=train

Each record has ``instruction``, an optional ``input`` and ``output`` (or ``response``). The text is the
Alpaca prompt followed by the response and the end-of-sequence token, cut at ``max_len`` tokens. The loss is
the cross-entropy on response tokens only (``loss=response``, the default) or on every token
(``loss=all``); evaluation always reports the response-token loss (nats per token) and greedy
response-token accuracy on ``eval_n`` held-out records. Records are ordered by a sha256 of their content:
the first ``eval_n`` are held out, and ``n`` (the low-fidelity subsample) takes the first ``n`` of the rest,
so both are deterministic and independent of the file's order. ``task_data_sha256`` of every row is the
sha256 of the records (canonical JSON lines) and the options.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np
import torch

from qra_bench.errors import QRBenchError
from qra_bench.tasks.base import TaskData

SHIPPED = {"news-alpaca": Path(__file__).resolve().parent / "data" / "news_alpaca.jsonl"}
PROMPT_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)
IGNORE = -100
_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


@dataclass(frozen=True)
class SFTSpec:
    """A parsed ``sft:SOURCE?options`` task name.

    max_len : tokens per example (prompt + response + EOS), longer ones are cut at the end.
    loss : ``response`` (response tokens only) or ``all`` (every token).
    n : training records (None: all) -- the low-fidelity subsample.
    eval_n : held-out records for the response-token loss and accuracy.
    """

    source: str
    max_len: int = 256
    loss: str = "response"
    n: int | None = None
    eval_n: int = 64
    split: str = "train"

    @classmethod
    def parse(cls, name: str) -> SFTSpec:
        if not name.startswith("sft:") or len(name) <= 4:
            raise QRBenchError(
                f"an instruction task is named sft:SOURCE (a data file, folder or dataset name), got {name!r}"
            )
        source, _, query = name[4:].partition("?")
        opts = dict(parse_qsl(query, keep_blank_values=True))
        unknown = sorted(set(opts) - {"max_len", "loss", "n", "eval_n", "split"})
        if unknown:
            raise QRBenchError(f"unknown sft option(s) {unknown} in {name!r}; use max_len, loss, n, eval_n, split")
        try:
            spec = cls(
                source=source,
                max_len=int(opts.get("max_len", 256)),
                loss=opts.get("loss", "response"),
                n=int(opts["n"]) if "n" in opts else None,
                eval_n=int(opts.get("eval_n", 64)),
                split=opts.get("split", "train"),
            )
        except ValueError:
            raise QRBenchError(f"sft options in {name!r} must be integers (max_len, n, eval_n)") from None
        if spec.loss not in ("response", "all"):
            raise QRBenchError(f"sft loss={spec.loss!r}: use response or all")
        if spec.max_len < 8 or spec.eval_n < 1 or (spec.n is not None and spec.n < 1):
            raise QRBenchError(f"sft options in {name!r}: max_len >= 8, eval_n >= 1, n >= 1")
        return spec


def alpaca_prompt(instruction: str, inp: str = "") -> str:
    """The Alpaca prompt (with or without the input section), ending where the response begins."""
    if inp and inp.strip():
        return PROMPT_INPUT.format(instruction=instruction, input=inp)
    return PROMPT_NO_INPUT.format(instruction=instruction)


def load_records(spec: SFTSpec) -> list[dict[str, str]]:
    """The records of ``spec.source`` as ``{"instruction", "input", "output"}`` dicts, in file order."""
    import datasets

    src = SHIPPED.get(spec.source, Path(spec.source))
    path = Path(src)
    datasets.disable_progress_bars()
    try:
        if path.is_file():
            builder = _BUILDERS.get(path.suffix.lower())
            if builder is None:
                raise QRBenchError(
                    f"sft data {path}: unsupported file type {path.suffix!r}; use .json, .jsonl, .parquet, .csv"
                )
            ds = datasets.load_dataset(builder, data_files={spec.split: str(path)}, split=spec.split)
        elif path.is_dir():
            ds = datasets.load_dataset(str(path), split=spec.split)
        elif spec.source.startswith(("/", ".")) or spec.source.endswith(tuple(_BUILDERS)):
            raise QRBenchError(f"sft data {spec.source} does not exist")
        else:
            ds = datasets.load_dataset(spec.source, split=spec.split)
    except QRBenchError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise QRBenchError(f"cannot load sft data {spec.source!r}: {type(exc).__name__}: {first[:300]}") from None
    if len(ds) == 0:
        raise QRBenchError(f"sft data {spec.source!r} holds no records")
    columns = set(ds.column_names)
    answer = "output" if "output" in columns else "response" if "response" in columns else None
    if "instruction" not in columns or answer is None:
        raise QRBenchError(
            f"sft data {spec.source!r} has columns {sorted(columns)}; Alpaca format needs instruction, "
            "output (or response) and optionally input"
        )
    has_input = "input" in columns
    out: list[dict[str, str]] = []
    for row in ds:
        inst, resp = row["instruction"], row[answer]
        if not isinstance(inst, str) or not isinstance(resp, str) or not inst.strip() or not resp.strip():
            raise QRBenchError(
                f"sft data {spec.source!r}: record {len(out)} has an empty or non-text instruction/{answer}"
            )
        out.append({"instruction": inst, "input": (row["input"] or "") if has_input else "", "output": resp})
    return out


def _record_key(r: dict[str, str]) -> str:
    return json.dumps(r, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class SFTTaskData(TaskData):
    """Tokenized instruction data: ``train_prompts``/``eval_prompts`` are (n, L) token ids padded at the end,
    ``train_labels``/``eval_labels`` the (n, L) training targets at the same positions (``IGNORE`` on prompt
    tokens when the loss is on responses only, and on padding); ``eval_response`` marks response tokens."""

    data_sha256: str = ""
    train_lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    eval_lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    eval_response: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))

    @property
    def sha256(self) -> str:
        """sha256 of the records (canonical JSON lines) and the task options."""
        return self.data_sha256

    @property
    def seq_len(self) -> int:
        return int(self.train_prompts.shape[1])

    def train_batch(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(input ids (b, w), targets (b, w)) with ``w`` the longest example of the batch."""
        w = int(self.train_lengths[index].max())
        return (
            torch.from_numpy(np.ascontiguousarray(self.train_prompts[index, :w])),
            torch.from_numpy(np.ascontiguousarray(self.train_labels[index, :w])),
        )

    @staticmethod
    def batch_loss(model: torch.nn.Module, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy (nats) over the targets that are not ``IGNORE``.

        Padding sits at the end and attention is causal, so real tokens never see it: no mask is needed."""
        logits = model(input_ids=ids[:, :-1]).logits.float()
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets[:, 1:].reshape(-1), ignore_index=IGNORE
        )

    @torch.no_grad()
    def evaluate_sft(
        self, model: torch.nn.Module, device: torch.device, n_eval: int | None = None, batch_size: int = 16
    ) -> tuple[float, float, float]:
        """(response-token loss in nats/token, greedy response-token accuracy, held-out LM loss in nats/token)
        on the first ``n_eval`` held-out records (all by default)."""
        n = min(n_eval or len(self.eval_prompts), len(self.eval_prompts))
        total, hits, count = 0.0, 0, 0
        for start in range(0, n, batch_size):
            sl = slice(start, min(n, start + batch_size))
            w = int(self.eval_lengths[sl].max())
            ids = torch.from_numpy(np.ascontiguousarray(self.eval_prompts[sl, :w])).to(device)
            resp = torch.from_numpy(np.ascontiguousarray(self.eval_response[sl, 1:w])).to(device)
            logits = model(input_ids=ids[:, :-1]).logits.float()
            target = ids[:, 1:]
            ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
            total += float(ce[resp].sum())
            hits += int(((logits.argmax(-1) == target) & resp).sum())
            count += int(resp.sum())
        lm_total, lm_tokens = 0.0, 0
        for start in range(0, len(self.lm_ids), 4):
            ids = torch.from_numpy(self.lm_ids[start : start + 4]).to(device)
            logits = model(input_ids=ids).logits[:, :-1].float()
            lm_total += float(
                torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum"
                )
            )
            lm_tokens += ids[:, 1:].numel()
        return total / max(count, 1), hits / max(count, 1), lm_total / max(lm_tokens, 1)


def _encode(tokenizer, records: list[dict[str, str]], max_len: int) -> list[tuple[list[int], int]]:
    """(token ids, prompt length) per record, at most ``max_len`` tokens: a response keeps up to
    ``max_len - min(prompt, max_len // 2)`` tokens (cut at its end), the prompt the rest (cut at its start, so
    that the instruction's end and the response header stay)."""
    eos = tokenizer.eos_token_id
    out = []
    for r in records:
        prompt = list(tokenizer(alpaca_prompt(r["instruction"], r["input"]))["input_ids"])
        resp = list(tokenizer(r["output"], add_special_tokens=False)["input_ids"]) + ([eos] if eos is not None else [])
        resp = resp[: max_len - min(len(prompt), max_len // 2)]
        prompt = prompt[len(prompt) + len(resp) - max_len :] if len(prompt) + len(resp) > max_len else prompt
        out.append((prompt + resp, len(prompt)))
    return out


def _arrays(encoded: list[tuple[list[int], int]], width: int, pad: int, loss: str):
    ids = np.full((len(encoded), width), pad, dtype=np.int64)
    labels = np.full((len(encoded), width), IGNORE, dtype=np.int64)
    response = np.zeros((len(encoded), width), dtype=bool)
    lengths = np.zeros(len(encoded), dtype=np.int64)
    for i, (seq, n_prompt) in enumerate(encoded):
        ids[i, : len(seq)] = seq
        first = n_prompt if loss == "response" else 0
        labels[i, first : len(seq)] = seq[first:]
        response[i, n_prompt : len(seq)] = True
        lengths[i] = len(seq)
    return ids, labels, response, lengths


def build_sft(name: str, tokenizer) -> SFTTaskData:
    """Load, split, subsample and tokenize the instruction data named by ``name`` (``sft:SOURCE?...``)."""
    from qra_bench.corpora import bbc_splits
    from qra_bench.tasks.bbc import held_out_lm_ids

    spec = SFTSpec.parse(name)
    records = load_records(spec)
    if len(records) < spec.eval_n + 1:
        raise QRBenchError(
            f"sft data {spec.source!r} holds {len(records)} records; it needs more than eval_n={spec.eval_n} "
            "(lower it with ?eval_n=...)"
        )
    digest = hashlib.sha256()
    for r in records:
        digest.update((_record_key(r) + "\n").encode())
    digest.update(json.dumps({"max_len": spec.max_len, "loss": spec.loss, "n": spec.n, "eval_n": spec.eval_n}).encode())
    order = sorted(range(len(records)), key=lambda i: hashlib.sha256(_record_key(records[i]).encode()).hexdigest())
    held, rest = order[: spec.eval_n], order[spec.eval_n :]
    rest = rest[: spec.n] if spec.n else rest
    model_max = getattr(tokenizer, "model_max_length", None)
    max_len = min(spec.max_len, model_max) if isinstance(model_max, int) and 0 < model_max < 10**6 else spec.max_len
    train = _encode(tokenizer, [records[i] for i in rest], max_len)
    evaluation = _encode(tokenizer, [records[i] for i in held], max_len)
    width = max(len(s) for s, _ in train + evaluation)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    tr_ids, tr_labels, _, tr_len = _arrays(train, width, pad, spec.loss)
    ev_ids, ev_labels, ev_resp, ev_len = _arrays(evaluation, width, pad, "response")
    return SFTTaskData(
        name=name,
        train_prompts=tr_ids,
        train_labels=tr_labels,
        eval_prompts=ev_ids,
        eval_labels=ev_labels,
        label_token_ids=np.zeros(0, dtype=np.int64),
        lm_ids=held_out_lm_ids(tokenizer, bbc_splits()["eval"]),
        kind="sft",
        data_sha256=digest.hexdigest(),
        train_lengths=tr_len,
        eval_lengths=ev_len,
        eval_response=ev_resp,
        description=f"Alpaca-format instruction data {spec.source}: {len(train)} train / {len(evaluation)} held-out records "
        f"of {len(records)}, max_len {max_len}, loss on {'response tokens' if spec.loss == 'response' else 'every token'}",
    )


def check_source(name: str) -> int:
    """Parse ``sft:SOURCE?...`` and read its records (no tokenizer, no model): the number of records, or a
    one-line :class:`QRBenchError` -- for commands that must refuse bad data before starting workers."""
    spec = SFTSpec.parse(name)
    n = len(load_records(spec))
    if n < spec.eval_n + 1:
        raise QRBenchError(
            f"sft data {spec.source!r} holds {n} records; it needs more than eval_n={spec.eval_n} "
            "(lower it with ?eval_n=...)"
        )
    return n
