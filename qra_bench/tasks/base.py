"""The task interface: fixed-length prompts with a one-token answer, and a held-out LM set.

Every example of a task is ``prompt + answer`` with the same prompt length, so batches need no padding and
training and evaluation are plain tensor slices (cheap on a CPU). The answer is one token of a closed
label set; the task loss is the full-vocabulary cross-entropy of that token (nats), accuracy is the
argmax over the label tokens. ``lm_ids`` holds held-out text chunks for the retained-capability LM loss.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass(frozen=True)
class TaskData:
    """Tokenized task data (all arrays int64).

    Attributes
    ----------
    name : task identity recorded in every row.
    train_prompts, eval_prompts : (n, prompt_len) token ids (``lm``: whole windows, trained on every token).
    train_labels, eval_labels : (n,) class indices into ``label_token_ids`` (``lm``: unused, zeros).
    label_token_ids : (n_classes,) the answer token of each class (``lm``: empty).
    lm_ids : (m, lm_len) held-out text for the LM loss.
    kind : ``"classify"`` or ``"lm"``.
    focus_token_ids : (k,) for ``lm`` tasks whose new skill is a subset of the vocabulary (``cipher``: the
        permuted tokens), the targets whose greedy accuracy is also reported on its own (``focus_accuracy``);
        empty otherwise. Derived from the arrays above, so not part of :attr:`sha256`.
    """

    name: str
    train_prompts: np.ndarray
    train_labels: np.ndarray
    eval_prompts: np.ndarray
    eval_labels: np.ndarray
    label_token_ids: np.ndarray
    lm_ids: np.ndarray
    description: str = ""
    kind: str = "classify"
    focus_token_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def sha256(self) -> str:
        """Content hash of every array (the data identity recorded in the table)."""
        h = hashlib.sha256(self.name.encode())
        if self.kind != "classify":  # keeps the identity of the classification tasks' existing rows
            h.update(self.kind.encode())
        for arr in (
            self.train_prompts,
            self.train_labels,
            self.eval_prompts,
            self.eval_labels,
            self.label_token_ids,
            self.lm_ids,
        ):
            h.update(str(arr.shape).encode())
            h.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
        return h.hexdigest()

    @property
    def seq_len(self) -> int:
        """Tokens per training sequence (prompt and answer, or the whole window): what the memory model's
        activation term is charged for."""
        return self.train_prompts.shape[1] + (1 if self.kind == "classify" else 0)

    def train_batch(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids (b, prompt_len+1), answer token ids (b,)) for the given training examples.

        ``lm`` tasks: (windows (b, len), the same windows) -- every token is a target."""
        if self.kind == "lm":
            ids = torch.from_numpy(np.ascontiguousarray(self.train_prompts[index]))
            return ids, ids
        answers = self.label_token_ids[self.train_labels[index]]
        ids = np.concatenate([self.train_prompts[index], answers[:, None]], axis=1)
        return torch.from_numpy(ids), torch.from_numpy(answers)
