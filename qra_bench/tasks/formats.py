"""Text formats shared by pretraining and the fine-tuning tasks.

The embedded base model learns the BBC topic format during pretraining (on pretraining articles only) so
that, as with a real LLM, the quantized weights hold knowledge the fine-tuning task relies on. Keeping the
format in one place guarantees that pretraining and evaluation agree on it token for token.
"""

from __future__ import annotations

from typing import Sequence

# The cue after the article prefix; the label word follows with a leading space.
TOPIC_CUE = "\nTopic:"
# Article tokens in a task prompt. Short prompts keep a trial cheap on a CPU.
PROMPT_TOKENS = 32
# Pretraining shows the format with windows of varied length, so the skill does not hinge on one length.
PRETRAIN_WINDOW = (24, 48)


def topic_prompt_ids(
    article_ids: Sequence[int], cue_ids: Sequence[int], start: int = 0, length: int = PROMPT_TOKENS
) -> list[int]:
    """Token ids of ``article[start:start+length] + TOPIC_CUE`` (the label is appended by the caller)."""
    return list(article_ids[start : start + length]) + list(cue_ids)
