"""The autosave journal of a dataset being edited: every edit is on disk before the next one.

One JSON line per edit (undo and redo are edits too), appended, flushed and fsynced, in a
hidden folder next to the data file: `datasets/.journal/<file name>.edits.jsonl`. Its first
line names the data file's size and modification time, so edits are only replayed on the file
they were made on. A save writes the file, then starts a fresh journal; a crash or kill at any
instant leaves either the saved file with no pending edits, or the old file plus every edit.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.util.files import atomic_write_text, fsync_dir

JOURNAL_VERSION = 1


def journal_path(data_path: str | Path) -> Path:
    data_path = Path(data_path)
    return data_path.parent / ".journal" / f"{data_path.name}.edits.jsonl"


def file_identity(data_path: str | Path) -> dict[str, int]:
    stat = Path(data_path).stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


@dataclass
class PendingEdits:
    """Edits found in a journal when a dataset is opened (the editor closed without saving)."""

    path: Path
    ops: list[dict[str, Any]] = field(default_factory=list)
    matches_file: bool = True
    """False when the data file changed since the journal began (its edits cannot be replayed)."""
    last_edit: float | None = None

    def describe(self) -> str:
        when = (
            time.strftime("%Y-%m-%d %H:%M", time.localtime(self.last_edit)) if self.last_edit else "earlier"
        )
        return f"{len(self.ops)} unsaved edit{'s' if len(self.ops) != 1 else ''} (last at {when})"


def read_pending(data_path: str | Path) -> PendingEdits | None:
    """The journal's edits, or None when there is none; a torn last line (kill mid-write) is ignored."""
    path = journal_path(data_path)
    try:
        lines = path.read_bytes().split(b"\n")
    except FileNotFoundError:
        return None
    try:
        header = json.loads(lines[0])
    except (json.JSONDecodeError, IndexError, UnicodeDecodeError):
        return PendingEdits(path, matches_file=False)
    ops = []
    for line in lines[1:]:
        try:
            op = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            break  # the line a kill cut short, and anything after it
        if isinstance(op, dict) and "op" in op:
            ops.append(op)
    if not ops:
        return None
    try:
        matches = {k: header.get(k) for k in ("size", "mtime_ns")} == file_identity(data_path)
    except FileNotFoundError:
        matches = False
    return PendingEdits(path, ops, matches, ops[-1].get("time"))


class EditJournal:
    """Append-only record of the edits made to one data file since it was last saved."""

    def __init__(self, data_path: str | Path) -> None:
        self.data_path = Path(data_path)
        self.path = journal_path(data_path)
        self._handle = None
        self.edits = 0

    def start(self, carry: list[dict[str, Any]] | None = None) -> None:
        """Begin a fresh journal for the file as it is now; `carry` replays recovered edits into it."""
        self.close()
        header = {"journal": JOURNAL_VERSION, "file": self.data_path.name, **file_identity(self.data_path)}
        lines = [json.dumps(header)] + [json.dumps(op, ensure_ascii=False) for op in (carry or [])]
        atomic_write_text(self.path, "\n".join(lines) + "\n")
        self._handle = open(self.path, "ab")  # noqa: SIM115 - held open for the editing session
        self.edits = len(carry or [])

    def append(self, op: dict[str, Any]) -> None:
        if self._handle is None:
            self.start()
        op = {**op, "time": time.time()}
        self._handle.write((json.dumps(op, ensure_ascii=False) + "\n").encode("utf-8"))
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.edits += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def discard(self) -> None:
        """Forget the pending edits (the user chose not to keep them, or they were saved)."""
        self.close()
        self.path.unlink(missing_ok=True)
        fsync_dir(self.path.parent)
        self.edits = 0


def set_aside(pending: PendingEdits) -> Path:
    """Keep a journal that cannot be replayed under another name instead of deleting it."""
    target = pending.path.with_name(f"{pending.path.stem}.{int(time.time())}.unmatched.jsonl")
    os.replace(pending.path, target)
    return target
