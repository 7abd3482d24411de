"""Rows far longer than any max length: measured from a clipped copy, so memory stays bounded.

Tokenizing a 50 MB row (with offsets) takes gigabytes and minutes, yet only its first
`max_length` tokens are ever trained. A row with more than `max_length * CHARS_PER_TOKEN`
characters is clipped to about that many before it is rendered: its first `max_length`
tokens are those of the whole row when the clipped text still holds them well before the
cut, and its length is estimated from the clipped part. Should the clipped part not hold
them (tokens longer than the bound), the row is refused with a message saying why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CHARS_PER_TOKEN = 64
"""Generous: ordinary text has 3-5 characters per token, code rarely more than 10."""
MIN_PIECE = 256
"""Characters kept of the string the cut falls in, at least (so it can be found in the rendered text)."""
TAIL = 16
"""Characters kept of each string after the cut (templates still see every turn)."""
MARGIN = 8
"""Tokens that must lie wholly before the cut beyond max_length (the cut changes those near it)."""


@dataclass
class Clip:
    piece: str
    """The string the cut fell in, as kept."""
    full_chars: int
    kept_chars: int


def _strings(row: Any) -> list[tuple[Any, Any]]:
    """(container, key) of every text a row holds, in the order a template renders them."""
    if isinstance(row, list):
        return [
            (message, "content")
            for message in row
            if isinstance(message, dict) and isinstance(message.get("content"), str)
        ]
    if isinstance(row, dict):
        return [(row, key) for key in ("prompt", "completion", "text") if isinstance(row.get(key), str)]
    return []


def clip_long_row(row: Any, max_length: int) -> tuple[Any, Clip | None]:
    """The row itself when it is short enough, else a clipped copy and how it was clipped."""
    places = _strings(row)
    full = sum(len(container[key]) for container, key in places)
    budget = max_length * CHARS_PER_TOKEN
    if full <= budget:
        return row, None
    clipped = [dict(m) for m in row] if isinstance(row, list) else dict(row)
    targets = _strings(clipped)
    used, clip = 0, None
    for container, key in targets:
        text = container[key]
        if clip is not None:
            container[key] = text[:TAIL]
        elif len(text) <= budget - used:
            used += len(text)
            continue
        else:
            container[key] = piece = text[: max(budget - used, MIN_PIECE)]
            clip = Clip(piece, full, 0)
        used += len(container[key])
    assert clip is not None  # full > budget, so some string crosses it
    clip.kept_chars = used
    return clipped, clip


def measure_clipped(rendered, clip: Clip, max_length: int):
    """Fix up a Rendered made from a clipped row: the estimated whole length goes into
    `truncated_tokens`. Raises ValueError when the clipped text cannot vouch for the first
    `max_length` tokens."""
    key = clip.piece.strip()
    found = rendered.text.find(key) if key else -1
    cut = found + len(key) if found >= 0 else 0
    safe = sum(1 for _start, end in rendered.offsets if end <= cut)  # tokens the cut cannot change
    if safe < max_length + MARGIN:
        raise ValueError(
            f"the row has {clip.full_chars:,} characters, far more than max_length {max_length} "
            f"tokens can hold, and too few tokens in its first {clip.kept_chars:,} to measure it: "
            "shorten or split it"
        )
    total = len(rendered.offsets) + round((clip.full_chars - clip.kept_chars) * safe / max(cut, 1))
    rendered.truncated_tokens = max(total - max_length, rendered.truncated_tokens)
    rendered.estimated_from_chars = clip.full_chars
    return rendered
