"""What is wrong with each row of a dataset being edited, and the fixes that are obvious.

The checks are the data layer's own: `Shape.normalise` (the reader's row checks), the same
duplicate key as `read_data`, and, with the project's tokenizer, `iter_rendered`/`render_row`
(the trainer's rendering: unrenderable rows, rows with nothing to train, truncation). On top
of those, text with surrounding whitespace is flagged, since it is trained as it stands.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.data import json_safety
from engine.data.long_rows import clip_long_row, measure_clipped
from engine.data.preference import side_row
from engine.data.reading import duplicate_key
from engine.data.rendering import Rendered, render_row
from engine.data.row_store import BROKEN, RowStore
from engine.data.shapes import FIELDS, PREFERENCE_SHAPES, RowProblem, Shape
from engine.errors import Cancelled

KIND_LABELS = {
    "invalid_json": "line is not valid JSON",
    "not_utf8": "line is not UTF-8",
    "too_deep": "nested too deeply",
    "wrong_type": "wrong type",
    "unknown_role": "unknown role",
    "empty_assistant": "empty reply",
    "empty_text": "empty text",
    "empty_prompt": "empty prompt",
    "same_answers": "same answers",
    "not_ending_with_assistant": "does not end with a reply",
    "duplicate": "duplicate",
    "surrounding_whitespace": "surrounding whitespace",
    "unrenderable": "chat template refuses it",
    "no_trainable_tokens": "nothing to train",
    "truncated": "truncated",
}
# kind -> (fix, button label, what it does): the fixes whose effect is obvious. Each drops or trims rows.
FIXES = {
    "surrounding_whitespace": (
        "trim",
        "Trim whitespace",
        "Removes spaces and newlines around every trained text",
    ),
    "duplicate": ("drop", "Drop duplicates", "Deletes exact copies of earlier rows; the first one stays"),
    "empty_assistant": ("drop", "Drop empty rows", "Deletes rows with an empty reply or empty text"),
    "empty_text": ("drop", "Drop empty rows", "Deletes rows with an empty reply or empty text"),
    "same_answers": ("drop", "Drop equal pairs", "Deletes pairs whose chosen and rejected answers are equal"),
    "invalid_json": ("drop", "Drop broken lines", "Deletes lines that are not valid JSON"),
    "not_utf8": ("drop", "Drop broken lines", "Deletes lines that could not be read"),
    "too_deep": ("drop", "Drop broken lines", "Deletes lines that could not be read"),
}
_CONVERSATION_KEYS = {"messages": "content", "sharegpt": "value"}


@dataclass
class RowIssue:
    kind: str
    message: str
    severity: str = "error"
    """error: the trainer skips the row; warning: it is trained as it stands."""


@dataclass
class Review:
    issues: dict[int, list[RowIssue]] = field(default_factory=dict)
    """Row id -> its issues (rows without issues are absent)."""
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Token length by row id (-1: not rendered); empty without a tokenizer."""
    max_length: int = 0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for issues in self.issues.values():
            for issue in issues:
                out[issue.kind] = out.get(issue.kind, 0) + 1
        return out


def _text_fields(record: dict[str, Any], shape: Shape) -> list[tuple[list | dict, Any, str]]:
    """(container, key, label) of every text the shape trains on, for whitespace checks and trims."""
    found = []
    if shape.name in _CONVERSATION_KEYS:
        turns = record.get(
            shape.columns.get(shape.name, shape.name)
            if shape.name == "messages"
            else shape.columns.get("conversations", "conversations")
        )
        content = _CONVERSATION_KEYS[shape.name]
        if isinstance(turns, list):
            for i, turn in enumerate(turns, start=1):
                if isinstance(turn, dict) and isinstance(turn.get(content), str):
                    found.append((turn, content, f"turn {i}"))
        return found
    for name in FIELDS[shape.name]:
        column = shape.columns.get(name, name)
        if isinstance(record.get(column), str):
            found.append((record, column, name))
    return found


def has_surrounding_whitespace(record: dict[str, Any], shape: Shape) -> list[str]:
    return [
        label
        for holder, key, label in _text_fields(record, shape)
        if holder[key] and holder[key] != holder[key].strip()
    ]


def trimmed(record: dict[str, Any], shape: Shape) -> dict[str, Any]:
    """A copy of the row with the whitespace around every trained text removed."""
    import copy

    out = copy.deepcopy(record)
    for holder, key, _label in _text_fields(out, shape):
        holder[key] = holder[key].strip()
    return out


def broken_issue(text: str) -> RowIssue:
    """Why a line the row store keeps as text could not be a row."""
    try:
        value = json_safety.loads(text)
    except json_safety.TooDeep as exc:
        return RowIssue("too_deep", f"this line is {exc}")
    except ValueError:
        value = None
    if isinstance(value, dict):  # it parses once its bad bytes are replaced (shown as \ufffd)
        return RowIssue(
            "not_utf8", "this line has bytes that are not UTF-8 (shown as \ufffd); save the file as UTF-8"
        )
    return RowIssue("invalid_json", "this line is not a valid JSON object")


def check_row(record: dict[str, Any], shape: Shape) -> tuple[Any, list[RowIssue]]:
    """The normalised row (None when unusable) and its issues, without the tokenizer."""
    if BROKEN in record:
        return None, [broken_issue(record[BROKEN])]
    try:
        normalised = shape.normalise(record)
    except RowProblem as exc:
        return None, [RowIssue(exc.kind, str(exc))]
    spaced = has_surrounding_whitespace(record, shape)
    issues = (
        [
            RowIssue(
                "surrounding_whitespace", "whitespace around the text of " + ", ".join(spaced[:3]), "warning"
            )
        ]
        if spaced
        else []
    )
    return normalised, issues


def rendered_issues(rendered: Rendered | ValueError, max_length: int) -> list[RowIssue]:
    """The trainer's verdict on a rendered row (as in engine.data.check)."""
    if isinstance(rendered, ValueError):
        return [RowIssue("unrenderable", str(rendered))]
    if rendered.trained_tokens == 0:
        return [
            RowIssue(
                "no_trainable_tokens",
                "no trainable tokens after masking"
                + (" and truncation" if rendered.truncated_tokens else ""),
            )
        ]
    if rendered.truncated_tokens:
        about = "about " if getattr(rendered, "estimated_from_chars", None) else ""  # from a clipped copy
        return [
            RowIssue(
                "truncated",
                f"longer than the max length {max_length}: "
                f"{about}{rendered.truncated_tokens} tokens will be cut",
                "warning",
            )
        ]
    return []


def sides_of(row: Any, shape: Shape) -> list[tuple[str, Any]]:
    """(side, row to render) of a normalised row: the row itself ("") for supervised shapes; each
    answer with the prompt for preference shapes, as engine.data.preference.render_sides renders them."""
    if shape.name not in PREFERENCE_SHAPES:
        return [("", row)]
    if shape.name == "preference":
        return [(side, side_row(row["prompt"], row[side])) for side in ("chosen", "rejected")]
    return [("good" if row["label"] else "bad", side_row(row["prompt"], row["completion"]))]


def sides_issues(sides: list[tuple[str, Rendered | ValueError]], max_length: int) -> list[RowIssue]:
    """`rendered_issues` of every side of a row, one issue per kind naming the sides it is about."""
    if len(sides) == 1 and not sides[0][0]:
        return rendered_issues(sides[0][1], max_length)
    merged: dict[str, tuple[RowIssue, dict[str, list[str]]]] = {}  # kind -> (issue, message -> sides)
    for side, rendered in sides:
        for issue in rendered_issues(rendered, max_length):
            if issue.kind == "no_trainable_tokens" and not isinstance(rendered, ValueError):
                if rendered.truncated_tokens:  # everything before the reply is the prompt
                    issue.message = f"the prompt alone fills the max length {max_length}"
            merged.setdefault(issue.kind, (issue, {}))[1].setdefault(issue.message, []).append(side)
    for issue, messages in merged.values():
        issue.message = "; ".join(f"{' and '.join(on)}: {message}" for message, on in messages.items())
    return [issue for issue, _m in merged.values()]


def token_length(rendered: Any) -> int | None:
    """A row's length in tokens before truncation (a preference row's: its longest side's)."""
    if isinstance(rendered, list):
        found = [token_length(r) for _side, r in rendered]
        return None if None in found or not found else max(found)
    if rendered is None or isinstance(rendered, ValueError):
        return None
    return len(rendered.input_ids) + rendered.truncated_tokens


def _render_one(tokenizer, row: Any, max_length: int) -> Rendered | ValueError:
    try:
        row, clip = clip_long_row(row, max_length)  # a huge row is never tokenized whole
        rendered = render_row(tokenizer, row, max_length)
        return rendered if clip is None else measure_clipped(rendered, clip, max_length)
    except ValueError as exc:
        return exc


def review_row(
    record: dict[str, Any], shape: Shape, tokenizer=None, max_length: int = 1024
) -> tuple[list[RowIssue], Any]:
    """One row's issues (duplicates aside) and its rendering, e.g. right after it was edited: a
    Rendered or the ValueError of a refused row; for preference shapes [(side, that), ...]."""
    normalised, issues = check_row(record, shape)
    rendered = None
    if normalised is not None and tokenizer is not None:
        sides = [(side, _render_one(tokenizer, row, max_length)) for side, row in sides_of(normalised, shape)]
        rendered = sides if shape.name in PREFERENCE_SHAPES else sides[0][1]
        issues += sides_issues(sides, max_length)
    return issues, rendered


def review_store(
    store: RowStore,
    shape: Shape,
    tokenizer=None,
    max_length: int = 1024,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
    batch: int = 2000,
) -> Review:
    """Check every row; with a tokenizer, also render them all and record their token lengths."""
    from engine.data.tokenizing import iter_rendered

    cancelled = cancel.is_set if isinstance(cancel, threading.Event) else cancel
    review = Review(max_length=max_length)
    lengths = np.full(store._next_id, -1, dtype=np.int64)
    seen: dict[bytes, int] = {}
    total, done = len(store), 0
    pending: list[tuple[int, str, Any]] = []  # (row id, side, row to render)

    def add(row_id: int, issue: RowIssue) -> None:
        review.issues.setdefault(row_id, []).append(issue)

    def render_pending() -> None:
        if tokenizer is None or not pending:
            pending.clear()
            return
        with closing(iter_rendered(tokenizer, [row for *_k, row in pending], max_length, batch)) as batches:
            results = [r for part in batches for r in part]
        by_row: dict[int, list[tuple[str, Rendered | ValueError]]] = {}
        for (row_id, side, _row), rendered in zip(pending, results, strict=True):
            by_row.setdefault(row_id, []).append((side, rendered))
        for row_id, sides in by_row.items():
            length = token_length(sides)
            if length is not None:
                lengths[row_id] = length
            for issue in sides_issues(sides, max_length):
                add(row_id, issue)
        pending.clear()

    for position, (row_id, record) in enumerate(store.iter_records(batch)):
        normalised, issues = check_row(record, shape)
        for issue in issues:
            add(row_id, issue)
        if normalised is not None:
            key = duplicate_key(normalised)
            first = seen.setdefault(key, position)
            if first != position:
                add(row_id, RowIssue("duplicate", f"exact duplicate of row {first + 1}", "warning"))
            pending.extend((row_id, side, row) for side, row in sides_of(normalised, shape))
        done += 1
        if done % batch == 0:
            render_pending()
            if cancelled is not None and cancelled():
                raise Cancelled()
            if progress is not None:
                progress(done, total)
    render_pending()
    if progress is not None:
        progress(done, total)
    if tokenizer is not None:
        review.lengths = lengths
    return review
