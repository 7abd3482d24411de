"""Preference rows (pairs, rated replies) as token ids, rendered exactly like supervised rows.

Each side of a row is the prompt plus one reply, rendered by `render_row` (engine.data.rendering):
the same chat template, the same trained span (the reply with its end-of-turn). The trainers take
the ids split where training starts: `prompt_ids` (shared by both sides) and each reply's ids up to
its last trained token, which is what TRL's collators put together again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.config import PREFERENCE_METHODS
from engine.data.rendering import IGNORE_INDEX, Rendered, render_row
from engine.data.shapes import PREFERENCE_SHAPES
from engine.errors import DataError

# training.method -> the data shapes it trains on (None: every supervised shape).
METHOD_SHAPES = {"dpo": ("preference",), "orpo": ("preference",), "kto": ("kto", "preference")}


def check_method_fits_data(method: str, shape: str) -> None:
    """A DataError saying what to do when the method cannot train on data of this shape."""
    wanted = METHOD_SHAPES.get(method)
    if wanted is None and shape in PREFERENCE_SHAPES:
        raise DataError(
            f"training.method = {method} trains on conversations or text, and this data holds "
            f"{'preference pairs' if shape == 'preference' else 'rated replies (kto)'}.",
            "Pick a preference method (--method dpo, orpo or kto) for this data, or other data.",
        )
    if wanted is not None and shape not in wanted:
        needs = "preference pairs (prompt, chosen, rejected)"
        if method == "kto":
            needs = f"rated replies (prompt, completion, label) or {needs}"
        raise DataError(
            f"training.method = {method} needs {needs}; this data is {shape}.",
            "Pick a preference dataset (pairs from the chat's compare mode make one), or --method sft.",
        )


def side_row(prompt: str | list[dict[str, str]], reply: str):
    """One side of a preference row in the renderer's form (prompt/completion, or messages)."""
    if isinstance(prompt, str):
        return {"prompt": prompt, "completion": reply}
    return [*prompt, {"role": "assistant", "content": reply}]


def measured_side(row):
    """The row the token statistics measure: a pair by its longer side (each side is cut at
    max_length on its own), a rated reply as prompt + reply; a supervised row is itself."""
    if isinstance(row, dict) and "chosen" in row:
        longer = max(row["chosen"], row["rejected"], key=len)
        return side_row(row["prompt"], longer)
    if isinstance(row, dict) and "label" in row and "completion" in row:
        return side_row(row["prompt"], row["completion"])
    return row


def render_sides(tokenizer, row: dict[str, Any], max_length: int) -> list[tuple[str, Rendered]]:
    """Every side of a preference row as the trainer tokenizes it: [("chosen", ...), ("rejected", ...)]
    for a pair, [("good" | "bad", ...)] for a rated reply. ValueError when the template refuses it."""
    if "chosen" in row:
        return [
            (side, render_row(tokenizer, side_row(row["prompt"], row[side]), max_length))
            for side in ("chosen", "rejected")
        ]
    label = "good" if row["label"] else "bad"
    return [(label, render_row(tokenizer, side_row(row["prompt"], row["completion"]), max_length))]


def _split(rendered: Rendered) -> tuple[list[int], list[int]]:
    """(ids before the first trained token, ids from it to the last trained token)."""
    trained = [i for i, label in enumerate(rendered.labels) if label != IGNORE_INDEX]
    if not trained:
        return rendered.input_ids, []
    return rendered.input_ids[: trained[0]], rendered.input_ids[trained[0] : trained[-1] + 1]


@dataclass
class TokenizedPreference:
    """One row for the trainers, or why it cannot be trained (`problem`, a short reason)."""

    example: dict[str, Any] | None
    tokens: int = 0
    truncated_tokens: int = 0
    problem: str = ""


def tokenize_preference(tokenizer, row: dict[str, Any], max_length: int) -> TokenizedPreference:
    """A pair as {prompt_ids, chosen_ids, rejected_ids}; a rated reply as {prompt_ids, completion_ids, label}.

    Both sides share the prompt's ids; a prompt that leaves no room for an answer within max_length is
    a problem (nothing would be trained), a longer side is cut at max_length by the trainers' collators.
    """
    try:
        sides = render_sides(tokenizer, row, max_length=1 << 30)  # cut below, where the trainer cuts
    except ValueError as exc:
        return TokenizedPreference(None, problem=f"unrenderable: {exc}")
    split = [_split(rendered) for _side, rendered in sides]
    prompt = split[0][0]
    if len(split) == 2:
        shared = 0  # a template may end the prompt differently before each answer: keep the common part
        for a, b in zip(split[0][0] + split[0][1], split[1][0] + split[1][1], strict=False):
            if a != b or shared >= len(prompt):
                break
            shared += 1
        prompt = prompt[:shared]
    answers = [(p + a)[len(prompt) :] for p, a in split]
    if any(not answer for answer in answers):
        return TokenizedPreference(None, problem="no trainable tokens")
    if len(prompt) >= max_length:
        return TokenizedPreference(None, problem="the prompt alone fills data.max_length")
    lengths = [len(prompt) + len(answer) for answer in answers]
    truncated = sum(max(0, n - max_length) for n in lengths)
    if len(answers) == 2:
        example = {"prompt_ids": prompt, "chosen_ids": answers[0], "rejected_ids": answers[1]}
    else:
        example = {"prompt_ids": prompt, "completion_ids": answers[0], "label": bool(row["label"])}
    tokens = sum(min(n, max_length) for n in lengths)
    return TokenizedPreference(example, tokens=tokens, truncated_tokens=truncated)


def as_sequences(example: dict[str, Any]) -> list[dict[str, list[int]]]:
    """The sequences a trainer runs forward and backward for one tokenized row (prompt + each answer,
    labels on the answer), in the sft rows' form: what the fit check measures a step with."""
    prompt = example["prompt_ids"]
    answers = [example[key] for key in ("chosen_ids", "rejected_ids", "completion_ids") if key in example]
    return [
        {"input_ids": prompt + answer, "labels": [IGNORE_INDEX] * len(prompt) + answer} for answer in answers
    ]


def as_rated(row: dict[str, Any]) -> list[dict[str, Any]]:
    """KTO from pairs: the chosen reply rated good, the rejected one bad (rated rows pass through)."""
    if "chosen" not in row:
        return [row]
    return [
        {"prompt": row["prompt"], "completion": row["chosen"], "label": True},
        {"prompt": row["prompt"], "completion": row["rejected"], "label": False},
    ]


assert set(METHOD_SHAPES) == set(PREFERENCE_METHODS)
__all__ = [
    "check_method_fits_data",
    "measured_side",
    "render_sides",
    "side_row",
    "tokenize_preference",
    "as_rated",
    "as_sequences",
    "TokenizedPreference",
]
