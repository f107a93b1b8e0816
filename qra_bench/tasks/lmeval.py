"""Scoring the in-process fine-tuned model with lm-evaluation-harness (``--eval TASKS``).

:class:`QRBenchLM` wraps the live model object of a trial (quantized, with its LoRA adapters, never
re-loaded or merged) in lm-eval's ``LM`` interface: ``loglikelihood`` (multiple choice),
``loglikelihood_rolling`` (perplexity) and greedy ``generate_until``. :class:`LmEvalScorer` resolves the
requested tasks once, before any training, and scores the model at each checkpoint: per-task accuracy and
their mean (the paper's "Avg" over zero-shot multiple-choice tasks).

A task is named by a shipped offline task (``qra_news_topic``, ``qra_news_headline``, ``qra_news_cloze``:
YAML plus JSON-lines data inside this package, built by :mod:`qra_bench.tasks.build_data`), by the path
of a task YAML whose ``data_files`` may be relative to the YAML, or by an lm-eval registry name
(``boolq``, ``piqa``, ...; their data come from the hub, so those need the network).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from lm_eval.api.model import LM

from qra_bench.errors import QRBenchError

SHIPPED_DIR = Path(__file__).resolve().parent / "data" / "lmeval"
SHIPPED_TASKS = tuple(sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml")))
#: Logits held at once while scoring (bytes, float32): bounds the batch for large vocabularies.
LOGITS_BYTES = 256 * 2**20


@dataclass(frozen=True)
class LmEvalSettings:
    """What lm-eval scores and how.

    tasks : shipped task names, task YAML paths or lm-eval registry names.
    limit : examples per task (the first ``limit`` documents; None: all) -- the low-fidelity knob.
    metric : the metric per task that becomes its accuracy (``acc`` or ``acc_norm``).
    batch_size : sequences per forward pass (lowered automatically for large vocabularies).
    max_length : context window in tokens (None: the model's ``max_position_embeddings``, at most 2048).
    """

    tasks: tuple[str, ...]
    limit: int | None = None
    metric: str = "acc"
    batch_size: int = 16
    max_length: int | None = None
    num_fewshot: int = 0


def parse_eval_tasks(text: str) -> tuple[str, ...]:
    """``"qra_news_topic,qra_news_cloze"`` -> a tuple of names (``"shipped"`` means every shipped task)."""
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    if not names:
        raise QRBenchError(f"no lm-eval tasks in {text!r}; give e.g. {','.join(SHIPPED_TASKS)}")
    return tuple(n for t in names for n in (SHIPPED_TASKS if t == "shipped" else (t,)))


def _yaml_config(path: Path) -> dict[str, Any]:
    """A task YAML as an inline config, with relative ``data_files`` resolved against the YAML's folder."""
    from lm_eval.tasks._yaml_loader import load_yaml

    try:
        cfg = load_yaml(path)
    except Exception as exc:
        raise QRBenchError(f"cannot read lm-eval task file {path}: {_one_line(exc)}") from None
    files = (cfg.get("dataset_kwargs") or {}).get("data_files")
    if isinstance(files, (str, list, dict)):

        def fix(p: str) -> str:
            q = Path(p)
            return p if q.is_absolute() or "://" in p else str((path.parent / q).resolve())

        if isinstance(files, str):
            files = fix(files)
        elif isinstance(files, list):
            files = [fix(f) for f in files]
        else:
            files = {k: fix(v) if isinstance(v, str) else [fix(x) for x in v] for k, v in files.items()}
        cfg["dataset_kwargs"] = {**cfg["dataset_kwargs"], "data_files": files}
    return cfg


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:400]


def load_eval_tasks(settings: LmEvalSettings) -> dict:
    """lm-eval's task dict for ``settings.tasks`` (data loaded); a :class:`QRBenchError` for unknown tasks.

    The registry of lm-eval's own tasks (thousands of YAML files, seconds to scan) is read only when a
    name is neither shipped nor a file.
    """
    from lm_eval.tasks import TaskManager

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    specs: list[Any] = []
    registry_names = []
    for name in settings.tasks:
        if name in SHIPPED_TASKS:
            specs.append(_yaml_config(SHIPPED_DIR / f"{name}.yaml"))
        elif name.endswith((".yaml", ".yml")):
            if not Path(name).is_file():
                raise QRBenchError(f"lm-eval task file {name} does not exist")
            specs.append(_yaml_config(Path(name)))
        else:
            specs.append(name)
            registry_names.append(name)
    manager = TaskManager(include_defaults=bool(registry_names))
    known = set(manager.all_tasks) | set(manager.all_groups) | set(manager.all_tags)
    unknown = [n for n in registry_names if n not in known]
    if unknown:
        raise QRBenchError(
            f"unknown lm-eval task(s) {unknown}; use a shipped task ({', '.join(SHIPPED_TASKS)}), "
            "a task YAML file or an lm-eval task name"
        )
    import datasets

    bar = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # "Generating test split" when a task's data is first cached: noise
    try:
        loaded = manager.load(specs)
    except Exception as exc:
        raise QRBenchError(f"cannot load lm-eval task(s) {list(settings.tasks)}: {_one_line(exc)}") from None
    finally:
        if bar:
            datasets.enable_progress_bars()
    for task in loaded["tasks"].values():
        if task.get_config("output_type") not in (
            "multiple_choice",
            "loglikelihood",
            "loglikelihood_rolling",
            "generate_until",
        ):
            raise QRBenchError(f"lm-eval task {task.task_name} has unsupported output type")
        task.set_config(key="num_fewshot", value=settings.num_fewshot)
        task.set_fewshot_seed(seed=1234)
    return loaded


class QRBenchLM(LM):
    """An lm-eval ``LM`` over a live causal LM (any ``nn.Module`` returning ``.logits``) and its tokenizer."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        device: torch.device,
        batch_size: int = 16,
        max_length: int | None = None,
    ) -> None:
        super().__init__()
        self.model, self.tokenizer, self._device = model, tokenizer, device
        config = getattr(model, "config", None)
        self.max_length = max_length or min(int(getattr(config, "max_position_embeddings", 2048) or 2048), 2048)
        self.vocab = int(getattr(config, "vocab_size", 0) or len(tokenizer))
        self.batch_size = batch_size
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        self.prefix_id = int(bos if bos is not None else 0)
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.prefix_id)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        # as lm-eval's HF model: trailing spaces of the context belong to the continuation's first token
        n = len(context) - len(context.rstrip())
        if n:
            context, continuation = context[:-n], context[-n:] + continuation
        whole = self._encode(context + continuation)
        ctx = self._encode(context)
        return ctx, whole[len(ctx) :]

    @torch.no_grad()
    def _score(self, pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(sum log p(continuation | context) in nats, whether it is the greedy continuation) per pair."""
        was_training = self.model.training
        self.model.eval()
        out: list[tuple[float, bool] | None] = [None] * len(pairs)
        # multiple choice: the choices of one document share its context, which then runs once
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (ctx, cont) in enumerate(pairs):
            if cont and len(ctx) + len(cont) <= self.max_length:
                groups.setdefault(tuple(ctx), []).append(i)
        for ctx_key, idx in groups.items():
            if len(idx) > 1:
                for i, res in zip(idx, self._score_shared(list(ctx_key), [pairs[i][1] for i in idx])):
                    out[i] = res
        order = sorted(
            (i for i in range(len(pairs)) if out[i] is None), key=lambda i: -(len(pairs[i][0]) + len(pairs[i][1]))
        )
        pos = 0
        while pos < len(order):
            longest = min(len(pairs[order[pos]][0]) + len(pairs[order[pos]][1]), self.max_length + 1)
            per_batch = max(1, min(self.batch_size, LOGITS_BYTES // max(1, 4 * longest * self.vocab)))
            batch = order[pos : pos + per_batch]
            pos += per_batch
            seqs = []
            for i in batch:
                ctx, cont = pairs[i]
                cont = cont[-self.max_length :]
                full = (ctx + cont)[-(self.max_length + 1) :]
                seqs.append((full[:-1], full[-len(cont) :] if cont else []))
            width = max(len(inp) for inp, _ in seqs)
            ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for row, (inp, _) in enumerate(seqs):
                ids[row, : len(inp)] = torch.tensor(inp)
                mask[row, : len(inp)] = 1
            logits = self.model(input_ids=ids.to(self._device), attention_mask=mask.to(self._device)).logits
            for row, (i, (inp, cont)) in enumerate(zip(batch, seqs)):
                if not cont:
                    out[i] = (0.0, True)
                    continue
                logp = torch.log_softmax(logits[row, len(inp) - len(cont) : len(inp)].float(), dim=-1)
                target = torch.tensor(cont, device=logp.device)
                ll = float(logp.gather(-1, target[:, None]).sum())
                out[i] = (ll, bool((logp.argmax(-1) == target).all()))
        self.model.train(was_training)
        return out  # type: ignore[return-value]

    def _cache_kwarg(self) -> str:
        """The forward argument that takes a KV cache: ``cache`` (newer transformers) or ``past_key_values``."""
        import inspect

        get_base_model = getattr(self.model, "get_base_model", None)  # peft's wrapper: look under it
        inner = get_base_model() if get_base_model is not None else self.model
        params = inspect.signature(inner.forward).parameters
        return "cache" if "cache" in params else "past_key_values"

    @torch.no_grad()
    def _score_shared(self, ctx: list[int], conts: list[list[int]]) -> list[tuple[float, bool] | None]:
        """:meth:`_score` for several continuations of one context: the context's forward pass once, its KV
        cache repeated for a batch of the continuations (padded at the end, after every scored token).
        All ``None`` when the model returns no cache (the caller then scores them the plain way)."""
        first = self.model(input_ids=torch.tensor([ctx], device=self._device), use_cache=True)
        name = self._cache_kwarg()
        cache = getattr(first, name, None) if name in ("cache", "past_key_values") and name in first else None
        if cache is None or not hasattr(cache, "batch_repeat_interleave"):
            return [None] * len(conts)
        head = torch.log_softmax(first.logits[0, -1].float(), dim=-1)  # predicts every continuation's first token
        width = max(len(c) for c in conts)
        cache.batch_repeat_interleave(len(conts))
        ids = torch.full((len(conts), width), self.pad_id, dtype=torch.long)
        for row, cont in enumerate(conts):
            ids[row, : len(cont)] = torch.tensor(cont)
        mask = torch.ones((len(conts), len(ctx) + width), dtype=torch.long, device=self._device)
        logits = self.model(input_ids=ids.to(self._device), attention_mask=mask, use_cache=True, **{name: cache}).logits
        out: list[tuple[float, bool] | None] = []
        for row, cont in enumerate(conts):
            logp = torch.cat([head[None], torch.log_softmax(logits[row, : len(cont) - 1].float(), dim=-1)])
            target = torch.tensor(cont, device=logp.device)
            out.append((float(logp.gather(-1, target[:, None]).sum()), bool((logp.argmax(-1) == target).all())))
        return out

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        pairs = []
        for req in requests:
            context, continuation = req.args
            ctx, cont = ([], self._encode(continuation)) if context == "" else self._encode_pair(context, continuation)
            pairs.append((ctx or [self.prefix_id], cont))  # an empty context is scored after the BOS/EOS token
        return self._score(pairs)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

        out = []
        for req in requests:
            (text,) = req.args
            windows = [
                make_disjoint_window(w)
                for w in get_rolling_token_windows(
                    token_list=self._encode(text),
                    prefix_token=self.prefix_id,
                    max_seq_len=self.max_length,
                    context_len=1,
                )
            ]
            out.append(sum(ll for ll, _ in self._score([(list(c), list(t)) for c, t in windows])))
        return out

    @torch.no_grad()
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        was_training = self.model.training
        self.model.eval()
        out = []
        for req in requests:
            context, kwargs = req.args
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(kwargs.get("max_gen_toks", 64))
            ids = ([self.prefix_id] + self._encode(context))[-(self.max_length - max_new) :]
            seq = torch.tensor([ids], device=self._device)
            new: list[int] = []
            for _ in range(max_new):  # greedy, without a KV cache: short answers only
                nxt = int(self.model(input_ids=seq).logits[0, -1].argmax())
                if nxt == self.tokenizer.eos_token_id:
                    break
                new.append(nxt)
                seq = torch.cat([seq, torch.tensor([[nxt]], device=self._device)], dim=1)
                text = self.tokenizer.decode(new)
                if any(u in text for u in until):
                    break
            text = self.tokenizer.decode(new)
            for u in until:
                text = text.split(u)[0]
            out.append(text)
        self.model.train(was_training)
        return out


def make_lm(
    model: torch.nn.Module, tokenizer, device: torch.device, batch_size: int = 16, max_length: int | None = None
):
    """An lm-eval ``LM`` over ``model`` (no copy, no merge: the trial's live quantized + LoRA model)."""
    return QRBenchLM(model, tokenizer, device, batch_size, max_length)


class LmEvalScorer:
    """Resolves the tasks once (before any training), then scores a model per call.

    Call it with the live model and its device; it returns ``{task: accuracy}`` (the settings' metric).
    """

    def __init__(self, settings: LmEvalSettings, tokenizer) -> None:
        if settings.metric not in ("acc", "acc_norm"):
            raise QRBenchError(f"lm-eval metric {settings.metric!r}: choose acc or acc_norm")
        if settings.limit is not None and settings.limit < 1:
            raise QRBenchError(f"lm-eval limit {settings.limit} must be >= 1 examples per task")
        self.settings = settings
        self.tokenizer = tokenizer
        self.task_dict = load_eval_tasks(settings)

    @property
    def task_names(self) -> list[str]:
        return sorted(self.task_dict["tasks"])

    def describe(self) -> dict:
        """Provenance of the scoring: settings, lm-eval version and a hash of every task's data files."""
        import lm_eval

        data = {}
        for name, task in self.task_dict["tasks"].items():
            files = ((task.get_config("dataset_kwargs") or {}).get("data_files")) or {}
            paths = (
                [files] if isinstance(files, str) else list(files.values()) if isinstance(files, dict) else list(files)
            )
            h = hashlib.sha256()
            for p in sorted(str(x) for x in paths):
                if Path(p).is_file():
                    h.update(Path(p).read_bytes())
            data[name] = h.hexdigest() if paths else str(task.get_config("dataset_path"))
        return {
            "settings": asdict(self.settings),
            "lm_eval_version": getattr(lm_eval, "__version__", "unknown"),
            "task_data_sha256": data,
        }

    def __call__(self, model: torch.nn.Module, device: torch.device) -> dict[str, float]:
        from lm_eval.evaluator import evaluate

        s = self.settings
        lm = make_lm(model, self.tokenizer, device, s.batch_size, s.max_length)
        result = evaluate(
            lm=lm, task_dict=self.task_dict, limit=s.limit, bootstrap_iters=0, log_samples=False, verbosity="WARNING"
        )
        scores = {}
        for name in self.task_names:
            metrics = result["results"][name]
            key = next((k for k in (f"{s.metric},none", "acc,none") if k in metrics), None)
            if key is None:
                raise QRBenchError(f"lm-eval task {name} reports no {s.metric}: {sorted(metrics)}")
            scores[name] = float(metrics[key])
        return scores
