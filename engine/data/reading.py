"""Reading chat (`messages`) and `prompt`/`completion` JSONL files, row by row.

Bad rows are reported with their line number and skipped; good rows stay usable. The
user's file is only ever opened for reading.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import DataError

ROLES = ("system", "user", "assistant")


@dataclass
class Problem:
    line: int
    reason: str


@dataclass
class ReadResult:
    rows: list[dict[str, Any]]
    format: str
    lines: list[int] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def skipped_by_reason(self) -> dict[str, int]:
        return dict(Counter(p.reason.split(":")[0] for p in self.problems))


def detect_format(row: Any) -> str | None:
    if isinstance(row, dict):
        if "messages" in row:
            return "messages"
        if "prompt" in row and "completion" in row:
            return "prompt_completion"
    return None


def check_messages(row: dict[str, Any]) -> list[dict[str, str]]:
    """Return the conversation as role/content dicts, or raise ValueError with the reason."""
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages is not a non-empty list")
    clean = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise ValueError(f"message {i + 1} is not an object")
        role, content = msg.get("role"), msg.get("content")
        if role not in ROLES:
            raise ValueError(f"unknown role: message {i + 1} has role {role!r} (allowed: {', '.join(ROLES)})")
        if not isinstance(content, str):
            raise ValueError(f"wrong type: message {i + 1} content is not a string")
        if role == "assistant" and not content.strip():
            raise ValueError(f"empty assistant turn: message {i + 1}")
        clean.append({"role": role, "content": content})
    if clean[-1]["role"] != "assistant":
        raise ValueError("conversation does not end with the assistant")
    return clean


def check_prompt_completion(row: dict[str, Any]) -> dict[str, str]:
    prompt, completion = row.get("prompt"), row.get("completion")
    if not isinstance(prompt, str) or not isinstance(completion, str):
        raise ValueError("wrong type: prompt and completion must be strings")
    if not completion.strip():
        raise ValueError("empty completion")
    return {"prompt": prompt, "completion": completion}


def read_jsonl(path: str | Path, fmt: str = "auto") -> ReadResult:
    """Read a JSONL file of chat or prompt/completion rows; raise DataError if nothing usable."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"Data file {path} does not exist.", "Check the path.")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a data file.", "Pass a .jsonl file.")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc.strerror}.", "Check the file's permissions.") from None
    if not raw.strip():
        raise DataError(f"Data file {path} is empty.", "Add one JSON object per line.")

    rows, lines, problems = [], [], []
    for number, line_bytes in enumerate(raw.splitlines(), start=1):
        if not line_bytes.strip():
            continue
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(Problem(number, f"not UTF-8: byte {exc.start + 1}"))
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(number, f"invalid JSON: {exc.msg} at column {exc.colno}"))
            continue
        if fmt == "auto":
            fmt = detect_format(obj) or "auto"
            if fmt == "auto":
                keys = ", ".join(sorted(obj)) if isinstance(obj, dict) else type(obj).__name__
                raise DataError(
                    f"{path} line {number}: cannot tell the data format from its fields ({keys}).",
                    'Use rows like {"messages": [{"role": "user", "content": ...}, ...]} '
                    'or {"prompt": ..., "completion": ...}.',
                )
        try:
            if not isinstance(obj, dict):
                raise ValueError("wrong type: the line is not a JSON object")
            rows.append(check_messages(obj) if fmt == "messages" else check_prompt_completion(obj))
            lines.append(number)
        except ValueError as exc:
            problems.append(Problem(number, str(exc)))

    if not rows:
        first = f" First problem: line {problems[0].line}: {problems[0].reason}." if problems else ""
        raise DataError(f"{path} has no usable rows ({len(problems)} bad).{first}", "Fix the rows and try again.")
    return ReadResult(rows=rows, format=fmt, lines=lines, problems=problems)
