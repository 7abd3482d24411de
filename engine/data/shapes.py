"""Row shapes: which fields hold the conversation, detected with a reason, or chosen by the user.

Every supervised shape is normalised to one of the three row forms the renderer takes: a list
of role/content messages, a {"prompt", "completion"} dict, or a {"text"} dict. The two preference
shapes (TRL's formats) are normalised to {"prompt", "chosen", "rejected"} and {"prompt",
"completion", "label"}: the prompt is a string or a list of messages ending with the user's turn,
every answer is the assistant's reply as a string (engine.data.preference renders them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.data.json_safety import json_type
from engine.errors import DataError

SHAPES = ("messages", "sharegpt", "alpaca", "preference", "kto", "prompt_completion", "text")
PREFERENCE_SHAPES = ("preference", "kto")
"""Shapes for preference tuning (training.method dpo/orpo: pairs; kto: pairs or labelled answers)."""
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
    "preference": ("prompt", "chosen", "rejected"),
    "kto": ("prompt", "completion", "label"),
    "prompt_completion": ("prompt", "completion"),
    "text": ("text",),
}
REQUIRED = {
    "messages": ("messages",),
    "sharegpt": ("conversations",),
    "alpaca": ("instruction", "output"),
    "preference": ("prompt", "chosen", "rejected"),
    "kto": ("prompt", "completion", "label"),
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
    for name in SHAPES:  # preference and kto before prompt_completion: they hold its columns too
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
        "prompt/chosen/rejected (preference pairs), prompt/completion/label (KTO), prompt/completion "
        "or text; "
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


def _preference_prompt(value: Any) -> str | list[dict[str, str]]:
    """A prompt as text, or as messages (TRL's conversational form) that end with the user's turn."""
    if isinstance(value, list):
        messages = []
        for i, msg in enumerate(value, start=1):
            role = msg.get("role") if isinstance(msg, dict) else None
            if role not in ROLES:
                raise RowProblem("unknown_role", f"unknown role {role!r} in prompt item {i}")
            messages.append({"role": role, "content": _text(msg.get("content"), f"prompt item {i} content")})
        if not messages or messages[-1]["role"] != "user":
            raise RowProblem("wrong_type", "the prompt's messages do not end with the user's turn")
        return messages
    prompt = _text(value, "prompt")
    if not prompt.strip():
        raise RowProblem("empty_prompt", "empty prompt")
    return prompt


def _answer(value: Any, what: str) -> str:
    """An answer as text, or as TRL's conversational form: one assistant message."""
    if isinstance(value, list):
        if len(value) != 1 or not isinstance(value[0], dict) or value[0].get("role") != "assistant":
            raise RowProblem("wrong_type", f"wrong type: {what} must be one assistant message")
        value = value[0].get("content")
    answer = _text(value, what)
    if not answer.strip():
        raise RowProblem("empty_assistant", f"empty {what}")
    return answer


def _preference(get: dict[str, Any]):
    prompt = _preference_prompt(get["prompt"])
    chosen, rejected = _answer(get["chosen"], "chosen"), _answer(get["rejected"], "rejected")
    if chosen.strip() == rejected.strip():
        raise RowProblem("same_answers", "chosen and rejected are the same answer")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _kto(get: dict[str, Any]):
    label = get["label"]
    if isinstance(label, str) and label.strip().lower() in ("true", "false"):
        label = label.strip().lower() == "true"  # CSV and TSV cells are text
    if not isinstance(label, bool):
        found = "missing or null" if label is None else json_type(label)
        raise RowProblem("wrong_type", f"wrong type: label is {found}, not true/false")
    return {
        "prompt": _preference_prompt(get["prompt"]),
        "completion": _answer(get["completion"], "completion"),
        "label": label,
    }


NORMALISERS = {
    "messages": _messages,
    "sharegpt": _sharegpt,
    "alpaca": _alpaca,
    "preference": _preference,
    "kto": _kto,
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
    if shape.name == "kto":
        return {name("prompt"): "", name("completion"): "", name("label"): True}
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
    if shape.name in PREFERENCE_SHAPES:
        raise DataError(
            "This dataset holds preference rows, not conversations.",
            "Pick the better of two replies in compare mode (or rate a reply) to add to it, "
            "or add the chat to a dataset of conversations.",
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


def _preference_record(
    shape: Shape, wanted: str, messages: list[dict[str, str]], **answers
) -> dict[str, Any]:
    """A record of a `wanted`-shaped dataset: the chat up to the user's last turn as its prompt (the
    user's text alone when that is all), then `answers` (field -> value), under the dataset's columns."""
    if shape.name != wanted:
        what = {"preference": "preference pairs", "kto": "rated replies"}[wanted]
        fields = ", ".join(FIELDS[wanted])
        raise DataError(
            f"This dataset holds {shape.name.replace('_', '/')} rows, not {what}.",
            f"Add it to a dataset of {what} ({fields}), or create a new one.",
        )
    if not messages or messages[-1]["role"] != "user":
        raise DataError(
            "A preference row needs the conversation up to the user's last message.",
            "Ask something in the chat first, then choose between the replies.",
        )
    if len(messages) == 1:
        prompt = messages[0]["content"]
    else:
        prompt = [{"role": m["role"], "content": m["content"]} for m in messages]
    fields = {"prompt": prompt, **answers}
    return {shape.columns.get(field, field): value for field, value in fields.items()}


def pair_record(messages: list[dict[str, str]], chosen: str, rejected: str, shape: Shape) -> dict[str, Any]:
    """A preference pair (the chat up to the user's turn, the better and the worse reply) as a record
    of a dataset with this shape ("preference", TRL's prompt/chosen/rejected)."""
    return _preference_record(shape, "preference", messages, chosen=chosen, rejected=rejected)


def rated_record(messages: list[dict[str, str]], reply: str, good: bool, shape: Shape) -> dict[str, Any]:
    """A rated reply (thumbs up: good) as a record of a KTO dataset (prompt/completion/label)."""
    return _preference_record(shape, "kto", messages, completion=reply, label=good)
