"""JSON that cannot hurt the reader: a nesting limit, and a way past a record that breaks it.

Python's json module raises RecursionError past about 1000 levels and pyarrow's reader
crashes the process on deeper input, so every record is held to `MAX_NESTING` levels: a
deeper one is a row problem of its own, and the other rows stay usable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

MAX_NESTING = 100
"""Deepest object/array nesting a record may have (a chat row needs 3 or 4)."""
TOO_DEEP = f"nested more than {MAX_NESTING} levels deep"
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_SPACE = re.compile(r"[ \t\r\n]*")


class TooDeep(ValueError):
    """A JSON value nested deeper than MAX_NESTING."""

    def __init__(self) -> None:
        super().__init__(TOO_DEEP)


def too_deep(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether a parsed value nests lists/dicts deeper than `limit` (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def json_type(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words ("an array", "a number")."""
    if isinstance(value, bool):
        return "true/false"
    names = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), f"a {type(value).__name__}")


def loads(text: str) -> Any:
    """json.loads, raising TooDeep (never RecursionError) for a value nested too deeply."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise TooDeep() from None
    # Only text with many brackets can nest deeply; the walk is skipped for ordinary rows.
    if text.count("{") + text.count("[") > MAX_NESTING and too_deep(value):
        raise TooDeep()
    return value


def skip_value(text: str, pos: int) -> int:
    """Index just past the JSON array/object starting at `pos` (strings skipped, nothing built)."""
    depth = 0
    for match in _TOKENS.finditer(text, pos):
        token = match.group()
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
        if depth == 0:
            return match.end()
    raise json.JSONDecodeError("Unterminated array or object", text, pos)


def iter_list_items(text: str) -> Iterator[Any]:
    """The items of a top-level JSON array one by one; an item nested too deeply comes as TooDeep.

    Used when the whole document cannot be parsed at once because one item is too deep.
    Raises json.JSONDecodeError for invalid syntax, as json.loads would.
    """
    decoder = json.JSONDecoder()
    pos = _SPACE.match(text, 0).end()
    if not text.startswith("[", pos):
        raise json.JSONDecodeError("Expecting '['", text, pos)
    pos = _SPACE.match(text, pos + 1).end()
    if text.startswith("]", pos):
        return
    while True:
        try:
            value, pos = decoder.raw_decode(text, pos)
            yield TooDeep() if too_deep(value) else value
        except RecursionError:
            pos = skip_value(text, pos)
            yield TooDeep()
        pos = _SPACE.match(text, pos).end()
        if text.startswith("]", pos):
            return
        if not text.startswith(",", pos):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
        pos = _SPACE.match(text, pos + 1).end()
