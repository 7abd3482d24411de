"""Saved conversations and prompt-set replies inside a project folder.

```
PROJECT/chats/<id>.json                          one conversation (id: 20250314-093012-4f2a)
PROJECT/prompt-sets/results/<set>/<label>.json   a prompt set's replies from one model/adapter
```
The prompt sets themselves are eval sets (PROJECT/prompt-sets/<set>.jsonl): engine.eval.prompt_sets.

Folders are created on demand and every write is atomic. Paths inside the project are
stored relative to it (the project can move) and handed back absolute. A damaged file is
listed with a `problem` instead of breaking the list.
"""

from __future__ import annotations

import json
import re
import secrets
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.chat.settings import GenerationSettings
from engine.errors import DataError, UserError
from engine.util.files import atomic_write_text, relative_inside

CHATS = "chats"
PROMPT_SETS = "prompt-sets"
RESULTS = "results"
FORMAT_VERSION = 1
TITLE_LENGTH = 60
UNTITLED = "New chat"
ROLES = ("system", "user", "assistant")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _slug(text: str, fallback: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:40].strip("-") or fallback


def _checked_name(name: str, what: str) -> str:
    """A file stem from a caller; refuses anything that could leave the folder."""
    if not isinstance(name, str) or not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise DataError(f"{what} {name!r} is not a valid name.", "Use a name from the list.")
    return name


def _absolute(project_dir: Path, value: str | None) -> str | None:
    if not value or Path(value).expanduser().is_absolute():
        return value
    return str((project_dir / value).resolve())


def _title(messages: list[dict[str, Any]]) -> str:
    for message in messages:
        if message.get("role") == "user" and str(message.get("content", "")).strip():
            text = " ".join(str(message["content"]).split())
            return text if len(text) <= TITLE_LENGTH else text[: TITLE_LENGTH - 1].rstrip() + "…"
    return ""


def _check_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list):
        raise DataError(f"messages must be a list, not {type(messages).__name__}.")
    for i, message in enumerate(messages, start=1):
        if not isinstance(message, dict):
            raise DataError(f"message {i} is not a role/content object.")
        if message.get("role") not in ROLES:
            raise DataError(
                f"message {i} has the role {message.get('role')!r} (allowed: {', '.join(ROLES)})."
            )
        if not isinstance(message.get("content"), str):
            raise DataError(f"message {i} has no text content.")
        if "stats" in message and not isinstance(message["stats"], dict | None):
            raise DataError(f"message {i} has stats that are not an object.")
    return messages


# ---------------------------------------------------------------------------- conversations


@dataclass
class Conversation:
    """One chat. `id` and `created` are filled in on first save; `title` (empty: automatic)
    becomes the first user message, trimmed to 60 characters, once there is one."""

    model: str = ""
    adapter: str | None = None
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    messages: list[dict[str, Any]] = field(default_factory=list)
    """role/content dicts; an assistant message may carry "stats" (ReplyStats.to_dict())."""
    id: str = ""
    title: str = ""
    created: str = ""
    updated: str = ""
    compare: dict[str, Any] | None = None
    """In compare mode, the other side: {"adapter": path or None (the base model), "messages": [...]}."""


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    title: str
    created: str
    updated: str
    model: str
    adapter: str | None
    message_count: int
    path: Path
    problem: str | None = None


def new_conversation_id() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def save_conversation(project_dir: str | Path, conv: Conversation) -> Path:
    """Write `conv` to PROJECT/chats/<id>.json (atomically); fills id/created/title/updated."""
    project_dir = Path(project_dir)
    _check_messages(conv.messages)
    if conv.compare is not None:
        _check_messages(conv.compare.get("messages"))
    folder = project_dir / CHATS
    if not conv.id:
        conv.id = new_conversation_id()
        while (folder / f"{conv.id}.json").exists():
            conv.id = new_conversation_id()
    _checked_name(conv.id, "Conversation")
    conv.created = conv.created or _now()
    conv.updated = _now()
    conv.title = conv.title or _title(conv.messages)  # stays empty until there is a user message
    data = {
        "format": FORMAT_VERSION,
        "id": conv.id,
        "title": conv.title,
        "created": conv.created,
        "updated": conv.updated,
        "model": relative_inside(project_dir, conv.model),
        "adapter": relative_inside(project_dir, conv.adapter),
        "settings": conv.settings.to_dict(),
        "messages": conv.messages,
    }
    if conv.compare is not None:
        data["compare"] = {
            "adapter": relative_inside(project_dir, conv.compare.get("adapter")),
            "messages": conv.compare["messages"],
        }
    path = folder / f"{conv.id}.json"
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")
    return path


def _read_conversation(project_dir: Path, path: Path) -> Conversation:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path.name} cannot be read: {exc}.") from None
    if not isinstance(data, dict):
        raise DataError(f"{path.name} is not a conversation (not a JSON object).")
    if not isinstance(data.get("format"), int) or data["format"] > FORMAT_VERSION:
        raise DataError(
            f"{path.name} has an unknown format {data.get('format')!r}.",
            "It was written by a newer Whetstone.",
        )
    try:
        settings = GenerationSettings.from_dict(data.get("settings", {}))
        messages = _check_messages(data.get("messages"))
        compare = data.get("compare")
        if compare is not None:
            if not isinstance(compare, dict):
                raise DataError("its compare side is not an object")
            compare = {
                "adapter": _absolute(project_dir, compare.get("adapter") or None),
                "messages": _check_messages(compare.get("messages")),
            }
    except UserError as exc:
        raise DataError(f"{path.name}: {exc.message}") from None
    return Conversation(
        model=_absolute(project_dir, str(data.get("model") or "")) or "",
        adapter=_absolute(project_dir, data.get("adapter") or None),
        settings=settings,
        messages=messages,
        id=path.stem,
        title=str(data.get("title") or ""),
        created=str(data.get("created") or ""),
        updated=str(data.get("updated") or ""),
        compare=compare,
    )


def load_conversation(project_dir: str | Path, conv_id: str) -> Conversation:
    """The conversation; DataError if it is missing or damaged."""
    project_dir = Path(project_dir)
    path = project_dir / CHATS / f"{_checked_name(conv_id, 'Conversation')}.json"
    if not path.is_file():
        raise DataError(f"Conversation {conv_id} does not exist.", "It may have been deleted.")
    return _read_conversation(project_dir, path)


def list_conversations(project_dir: str | Path) -> list[ConversationSummary]:
    """Every conversation, newest (last updated) first; damaged ones carry a `problem`."""
    project_dir = Path(project_dir)
    folder = project_dir / CHATS
    if not folder.is_dir():
        return []
    found: list[tuple[float, ConversationSummary]] = []
    for path in folder.glob("*.json"):
        if path.name.startswith("."):
            continue  # a temp file of an atomic write
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue  # deleted while listing
        try:
            c = _read_conversation(project_dir, path)
        except UserError as exc:
            modified = datetime.fromtimestamp(mtime).astimezone().isoformat(timespec="seconds")
            summary = ConversationSummary(
                path.stem, path.stem, "", modified, "", None, 0, path, exc.one_line()
            )
            found.append((mtime, summary))
            continue
        try:
            when = datetime.fromisoformat(c.updated).timestamp()
        except ValueError:
            when = mtime
        found.append(
            (
                when,
                ConversationSummary(
                    c.id,
                    c.title or UNTITLED,
                    c.created,
                    c.updated,
                    c.model,
                    c.adapter,
                    len(c.messages),
                    path,
                ),
            )
        )
    found.sort(key=lambda item: (item[0], item[1].id), reverse=True)
    return [summary for _when, summary in found]


def delete_conversation(project_dir: str | Path, conv_id: str) -> bool:
    """Remove a conversation; False if it was already gone."""
    path = Path(project_dir) / CHATS / f"{_checked_name(conv_id, 'Conversation')}.json"
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def conversation_to_row(messages: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    """A `{"messages": [...]}` training row from a chat (stats and other keys dropped)."""
    _check_messages(messages)
    if not any(m["role"] == "user" for m in messages):
        raise DataError("This conversation has no user message to learn from.")
    if messages[-1]["role"] != "assistant":
        raise DataError(
            "A training example must end with an assistant reply; this conversation ends with "
            f"a {messages[-1]['role']} message.",
            "Generate or write the reply first.",
        )
    for i, message in enumerate(messages, start=1):
        if message["role"] == "assistant" and not message["content"].strip():
            raise DataError(f"Assistant message {i} is empty.", "Write the reply, or delete that turn.")
    return {"messages": [{"role": m["role"], "content": m["content"]} for m in messages]}


# ---------------------------------------------------------------------------- prompt-set replies


def _results_path(project_dir: str | Path, set_slug: str, label: str) -> Path:
    _checked_name(set_slug, "Prompt set")
    return Path(project_dir) / PROMPT_SETS / RESULTS / set_slug / f"{_slug(label, 'results')}.json"


def save_prompt_set_results(
    project_dir: str | Path, set_slug: str, label: str, results: list[dict[str, Any]]
) -> Path:
    """Write a set's replies from one model/adapter (`label`, e.g. "base" or a run name).

    Each result is a JSON-able dict, typically {"prompt", "reply", "stats"}. Saving under
    the same label again replaces the earlier results.
    """
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise DataError("Prompt-set results must be a list of objects.")
    path = _results_path(project_dir, set_slug, label)
    data = {
        "format": FORMAT_VERSION,
        "set": set_slug,
        "label": label,
        "saved": _now(),
        "results": results,
    }
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")
    return path


def load_prompt_set_results(project_dir: str | Path, set_slug: str, label: str) -> list[dict[str, Any]]:
    path = _results_path(project_dir, set_slug, label)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"No results saved for {label!r} on prompt set {set_slug}.") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path.name} cannot be read: {exc}.") from None
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list):
        raise DataError(f"{path.name} holds no results list.")
    return results


def list_prompt_set_results(project_dir: str | Path, set_slug: str) -> list[str]:
    """The labels with saved results for a set, sorted."""
    folder = Path(project_dir) / PROMPT_SETS / RESULTS / _checked_name(set_slug, "Prompt set")
    labels = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            labels.append(str(data["label"]))
        except (OSError, ValueError, KeyError, TypeError):
            labels.append(path.stem)
    return sorted(labels)
