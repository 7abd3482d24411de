"""Turning a row into token ids and a loss mask, exactly as the trainer sees it.

Assistant spans are found by rendering conversation prefixes through the chat template,
so templates without `{% generation %}` markers work, and labels come from our own
masks rather than from the pad id (pad == eos on many models: masking pad would also mask
the end-of-turn token and the model would never learn to stop).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

from engine.models.chat_template import render_chat_template

IGNORE_INDEX = -100


@dataclass
class Rendered:
    text: str
    input_ids: list[int]
    labels: list[int]
    spans: list[tuple[int, int]] = field(default_factory=list)
    """Character spans of `text` that are trained (assistant turns with their end-of-turn)."""
    truncated_tokens: int = 0
    offsets: list[tuple[int, int]] = field(default_factory=list)
    """Character (start, end) in `text` of every token before truncation: one more per truncated token."""

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def _template(tokenizer, messages, add_generation_prompt: bool) -> str:
    """Sandboxed and limited (engine.models.chat_template): a refusal of this conversation (e.g.
    roles that do not alternate) is a ValueError for this row; a template that cannot be used at
    all (a syntax error, an endless loop, a runaway size) is a ModelError for the whole model."""
    return render_chat_template(tokenizer, messages, add_generation_prompt=add_generation_prompt)


def conversation_spans(tokenizer, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """Full text and the character spans of every assistant turn, end-of-turn marker included."""
    text = _template(tokenizer, messages, add_generation_prompt=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        last = i == len(messages) - 1
        upto = text if last else _template(tokenizer, messages[: i + 1], add_generation_prompt=False)
        if i:
            prefix = _template(tokenizer, messages[:i], add_generation_prompt=True)
        else:
            # An opening assistant turn: templates differ on an empty prefix (injected system
            # prompts, bos), so locate its content, the last thing before the end-of-turn.
            found = upto.rfind(message["content"].strip())
            if found < 0:
                raise ValueError("the chat template changes the text of the opening assistant turn")
            prefix = upto[:found]
        if not (text.startswith(upto) and upto.startswith(prefix)):
            raise ValueError("the chat template renders earlier turns differently as the conversation grows")
        # What follows the end-of-turn marker (usually a newline) is never generated.
        end = len(upto.rstrip())
        if end > len(prefix):
            spans.append((len(prefix), end))
    return text, spans


def render_text(tokenizer, row: list[dict[str, str]] | dict[str, Any]) -> tuple[str, list[tuple[int, int]]]:
    """The text a row becomes for this tokenizer, and the character spans that are trained.

    A row is a `messages` list (role/content dicts), a {"prompt", "completion"} dict, or a
    {"text"} dict (continued pre-training: every token is trained, eos appended).
    """
    eos = tokenizer.eos_token or ""
    if isinstance(row, dict) and "text" in row:
        text = row["text"] + eos
        return text, [(0, len(text))]
    if isinstance(row, list):
        if not tokenizer.chat_template:
            raise ValueError("the model has no chat template, so chat rows cannot be rendered")
        return conversation_spans(tokenizer, row)
    if tokenizer.chat_template:
        messages = [
            {"role": "user", "content": row["prompt"]},
            {"role": "assistant", "content": row["completion"]},
        ]
        return conversation_spans(tokenizer, messages)
    # No template: plain continuation, ending with eos so the model learns to stop.
    text = row["prompt"] + row["completion"] + eos
    return text, [(len(row["prompt"]), len(text))]


def build_rendered(
    text: str, spans: list[tuple[int, int]], ids: list[int], offsets, max_length: int
) -> Rendered:
    """Labels from token offsets: a token is trained when it overlaps a trained span."""
    ids = list(ids)
    offsets = list(map(tuple, offsets))  # the tokenizer gives tuples already; this is a cheap copy
    starts = [a for a, _b in spans]  # spans are sorted and disjoint
    ends = [b for _a, b in spans]
    labels = []
    for token, (start, end) in zip(ids, offsets, strict=True):
        k = bisect_right(ends, start)  # first span that ends after this token starts
        labels.append(token if k < len(spans) and starts[k] < end else IGNORE_INDEX)
    truncated = max(0, len(ids) - max_length)
    if truncated:
        ids, labels = ids[:max_length], labels[:max_length]
    return Rendered(
        text=text, input_ids=ids, labels=labels, spans=spans, truncated_tokens=truncated, offsets=offsets
    )


def render_row(tokenizer, row: list[dict[str, str]] | dict[str, Any], max_length: int) -> Rendered:
    """Render one row for training: the same function the trainer, the editor and the stats use."""
    text, spans = render_text(tokenizer, row)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return build_rendered(text, spans, encoded["input_ids"], encoded["offset_mapping"], max_length)
