"""Row shapes: which fields hold the conversation, detected with a reason, or chosen by the user.

Every shape is normalised to one of the three row forms the renderer takes: a list of
role/content messages, a {"prompt", "completion"} dict, or a {"text"} dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.data.json_safety import json_type
from engine.errors import DataError

SHAPES = ("messages", "sharegpt", "alpaca", "prompt_completion", "text")
ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "chatgpt": "assistant",
}
# The fields each shape reads, under their standard names; a column mapping renames them.
FIELDS = {
    "messages": ("messages",),
    "sharegpt": ("conversations",),
    "alpaca": ("instruction", "input", "output", "system"),
    "prompt_completion": ("prompt", "completion"),
    "text": ("text",),
}
REQUIRED = {
    "messages": ("messages",),
    "sharegpt": ("conversations",),
    "alpaca": ("instruction", "output"),
    "prompt_completion": ("prompt", "completion"),
    "text": ("text",),
}


class RowProblem(ValueError):
    """A row that cannot be used; `kind` is a short machine-readable reason."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Shape:
    name: str
    columns: dict[str, str]
    """Standard field name -> the column that holds it in this file."""
    reason: str

    def normalise(self, record: dict[str, Any]):
        get = {f: record.get(self.columns.get(f, f)) for f in FIELDS[self.name]}
        return NORMALISERS[self.name](get)


def detect_shape(columns: list[str], choice: str = "auto", mapping: dict[str, str] | None = None) -> Shape:
    """The shape of a file's records; the user's choice and column mapping always win."""
    mapping = dict(mapping or {})
    present = set(columns)
    if choice != "auto":
        if choice not in SHAPES:
            raise DataError(f"data.format = {choice!r} is not a shape: use one of auto, {', '.join(SHAPES)}.")
        missing = [f for f in REQUIRED[choice] if mapping.get(f, f) not in present]
        if missing:
            raise DataError(
                f"The data has no column {mapping.get(missing[0], missing[0])!r} "
                f"needed for the {choice} shape "
                f"(columns: {', '.join(sorted(present)) or 'none'}).",
                f'Map it with data.columns, e.g. {{{missing[0]} = "your_column"}} '
                f"(CLI: --column {missing[0]}=your_column).",
            )
        return Shape(choice, mapping, "chosen by you")
    for name in ("messages", "sharegpt", "alpaca", "prompt_completion", "text"):
        needed = [mapping.get(f, f) for f in REQUIRED[name]]
        if all(c in present for c in needed):
            return Shape(
                name, mapping, f"it has the column{'s' if len(needed) > 1 else ''} {', '.join(needed)}"
            )
    unknown = [(field, column) for field, column in mapping.items() if column not in present]
    if unknown:
        field, column = unknown[0]
        raise DataError(
            f"The data has no column {column!r} (given for {field}; its columns: "
            f"{', '.join(sorted(present)) or 'none'}).",
            f"Name one of its columns, e.g. --column {field}=NAME (data.columns in a config).",
        )
    raise DataError(
        f"Cannot tell the data's shape from its columns ({', '.join(sorted(present)) or 'none'}).",
        "Expected messages, conversations (ShareGPT), instruction/output (Alpaca), "
        "prompt/completion or text; "
        "or name yours with data.format and data.columns (CLI: --format and --column FIELD=NAME).",
    )


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        found = "missing or null" if value is None else json_type(value)
        raise RowProblem("wrong_type", f"wrong type: {what} is {found}, not text")
    return value


def _check_conversation(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    if not messages:
        raise RowProblem("wrong_type", "wrong type: the conversation is empty")
    for i, msg in enumerate(messages, start=1):
        if msg["role"] == "assistant" and not msg["content"].strip():
            raise RowProblem("empty_assistant", f"empty assistant turn (message {i})")
    if messages[-1]["role"] != "assistant":
        raise RowProblem("not_ending_with_assistant", "conversation does not end with the assistant")
    return messages


def _conversation(
    turns: Any, field: str, role_key: str, content_key: str, roles: dict
) -> list[dict[str, str]]:
    """Check a list of turns and map each to {"role", "content"} with the standard role names."""
    if not isinstance(turns, list):
        raise RowProblem("wrong_type", f"wrong type: {field} is {json_type(turns)}, not a list")
    out = []
    for i, msg in enumerate(turns, start=1):
        if not isinstance(msg, dict):
            raise RowProblem("wrong_type", f"wrong type: {field} item {i} is not an object")
        source = msg.get(role_key)
        role = roles.get(source.lower() if isinstance(source, str) else None)
        if role is None:
            raise RowProblem(
                "unknown_role", f"unknown role {source!r} in {field} item {i} (allowed: {', '.join(roles)})"
            )
        out.append({"role": role, "content": _text(msg.get(content_key), f"{field} item {i} {content_key}")})
    return _check_conversation(out)


def _messages(get: dict[str, Any]):
    return _conversation(get["messages"], "messages", "role", "content", {r: r for r in ROLES})


def _sharegpt(get: dict[str, Any]):
    return _conversation(get["conversations"], "conversations", "from", "value", SHAREGPT_ROLES)


def _alpaca(get: dict[str, Any]):
    instruction = _text(get["instruction"], "instruction")
    extra = get.get("input")
    extra = "" if extra is None else _text(extra, "input")
    output = _text(get["output"], "output")
    prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    if isinstance(get.get("system"), str) and get["system"].strip():
        messages.insert(0, {"role": "system", "content": get["system"]})
    return _check_conversation(messages)


def _prompt_completion(get: dict[str, Any]):
    prompt, completion = _text(get["prompt"], "prompt"), _text(get["completion"], "completion")
    if not completion.strip():
        raise RowProblem("empty_assistant", "empty completion")
    return {"prompt": prompt, "completion": completion}


def _raw_text(get: dict[str, Any]):
    text = _text(get["text"], "text")
    if not text.strip():
        raise RowProblem("empty_text", "empty text")
    return {"text": text}


NORMALISERS = {
    "messages": _messages,
    "sharegpt": _sharegpt,
    "alpaca": _alpaca,
    "prompt_completion": _prompt_completion,
    "text": _raw_text,
}


def blank_record(shape: Shape) -> dict[str, Any]:
    """A new, empty row of this shape (for "Add row"): a user turn and a reply to fill in."""
    name = lambda field: shape.columns.get(field, field)  # noqa: E731 - local shorthand
    if shape.name == "messages":
        return {name("messages"): [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}]}
    if shape.name == "sharegpt":
        return {name("conversations"): [{"from": "human", "value": ""}, {"from": "gpt", "value": ""}]}
    return {
        name(field): "" for field in REQUIRED[shape.name] + (("input",) if shape.name == "alpaca" else ())
    }


def record_for_shape(messages: list[dict[str, str]], shape: Shape) -> dict[str, Any]:
    """A chat (system/user/assistant messages) as a record of a dataset with this shape."""
    name = lambda field: shape.columns.get(field, field)  # noqa: E731 - local shorthand
    if shape.name == "messages":
        return {name("messages"): [{"role": m["role"], "content": m["content"]} for m in messages]}
    if shape.name == "sharegpt":
        back = {"system": "system", "user": "human", "assistant": "gpt"}
        return {name("conversations"): [{"from": back[m["role"]], "value": m["content"]} for m in messages]}
    if shape.name == "text":
        raise DataError(
            "This dataset holds plain text (continued pre-training), not conversations.",
            "Add the chat to a dataset of conversations, or create a new one.",
        )
    system = [m["content"] for m in messages if m["role"] == "system"]
    turns = [m for m in messages if m["role"] != "system"]
    if len(turns) != 2 or turns[0]["role"] != "user" or turns[1]["role"] != "assistant":
        raise DataError(
            f"This dataset holds single exchanges ({shape.name.replace('_', '/')}), and this chat has "
            f"{len(turns)} turns.",
            "Add it to a dataset of conversations, or create a new one.",
        )
    if shape.name == "prompt_completion":
        return {name("prompt"): turns[0]["content"], name("completion"): turns[1]["content"]}
    record = {
        name("instruction"): turns[0]["content"],
        name("input"): "",
        name("output"): turns[1]["content"],
    }
    if system:
        record[name("system")] = system[0]
    return record
