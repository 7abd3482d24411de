"""The run's event log: `RUN_DIR/events.jsonl`, one JSON object per line.

Every event has `type` and `time`. Types: status (`state`), metrics, eval, checkpoint,
warning, error (`kind`, `message`, `hint`), data, model, info. Lines are appended and flushed;
state changes are fsynced too, so a reader (the GUI) never misses how a run ended.

This module owns the format: the writer (EventLog), the one line parser (`parse_event`), and
the readers built on it: every event in order (`read_events`), the first one, and the last
ones read backwards from the end (`iter_backwards`), which is what a run summary needs.
A line is an event only when it is complete (ends in a newline) and parses as a JSON object;
nothing depends on how EventLog happens to lay out its keys.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STATES = ("loading", "training", "saving", "done", "stopped", "failed")


def _clean(value: Any) -> Any:
    # NaN/inf are not JSON; keep the line parseable by any reader.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class EventLog:
    """Appends events to a run's `events.jsonl`; optionally echoes them to a callback.

    With no path the events are made but not written: the log of a data-parallel rank other
    than 0, which runs the same code as rank 0 but must not write the run folder.
    """

    def __init__(self, path: str | Path | None, echo=None) -> None:
        self.path = Path(path) if path is not None else None
        self._handle = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "ab", buffering=0)  # noqa: SIM115 (kept open for the run)
        self._echo = echo

    def emit(self, type_: str, durable: bool = False, **fields: Any) -> dict[str, Any]:
        event = {"type": type_, "time": round(time.time(), 3)}
        event.update({k: _clean(v) for k, v in fields.items()})
        if self._handle is not None:
            line = json.dumps(event, ensure_ascii=False) + "\n"
            _append_line(self._handle.fileno(), line.encode(), durable)
        if self._echo is not None:
            self._echo(event)
        return event

    def status(self, state: str, **fields: Any) -> dict[str, Any]:
        assert state in STATES, state
        return self.emit("status", durable=True, state=state, **fields)

    def warning(self, message: str, **fields: Any) -> dict[str, Any]:
        return self.emit("warning", message=message, **fields)

    def error(self, kind: str, message: str, hint: str = "") -> dict[str, Any]:
        return self.emit("error", durable=True, kind=kind, message=message, hint=hint)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def parse_event(line: bytes | str) -> dict[str, Any] | None:
    """One line of the log as an event, or None if it is not a JSON object (damaged, foreign, not UTF-8)."""
    try:
        event = json.loads(line)
    except (ValueError, RecursionError):  # ValueError covers UnicodeDecodeError; RecursionError: deep nesting
        return None
    return event if isinstance(event, dict) else None


def _append_line(fd: int, line: bytes, durable: bool) -> None:
    """A whole line or nothing: a failed write (a full disk) is cut off again, never left torn."""
    start = os.fstat(fd).st_size
    try:
        done = 0
        while done < len(line):
            done += _write(fd, line[done:])
        if durable:
            os.fsync(fd)
    except OSError:
        try:
            os.ftruncate(fd, start)
        except OSError:
            pass
        raise


_write = os.write  # one place to fail a write in tests


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """All complete events of a run, in order; a torn last line (killed writer) is ignored."""
    events = []
    try:
        with open(path, "rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break
                event = parse_event(line)
                if event is not None:
                    events.append(event)
    except FileNotFoundError:
        return []
    return events


def first_event(path: str | Path) -> dict[str, Any] | None:
    """The first event of a run (when it started), or None."""
    try:
        with open(path, "rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    return None
                event = parse_event(line)
                if event is not None:
                    return event
    except FileNotFoundError:
        return None
    return None


def iter_backwards(
    path: str | Path, end: int | None = None, block: int = 1 << 16
) -> Iterator[dict[str, Any]]:
    """The complete events before byte `end` (default: the file's end), newest first.

    Reads the file in blocks from the end, so finding the last few events of a 100k-step run
    costs a few kilobytes, however long the run. Bytes after the last newline are a line still
    being written (or torn by a kill) and are skipped.
    """
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed by the `with` below)
    except FileNotFoundError:
        return
    with handle:
        size = os.fstat(handle.fileno()).st_size
        pos = size if end is None else min(end, size)
        carry = b""
        torn = True  # until the first newline is seen, the bytes belong to an unfinished last line
        while pos > 0:
            step = min(block, pos)
            pos -= step
            handle.seek(pos)
            parts = (handle.read(step) + carry).split(b"\n")
            carry = parts[0]  # may continue in the block before this one
            lines = parts[1:]
            if torn and lines:
                lines, torn = lines[:-1], False
            for line in reversed(lines):
                event = parse_event(line)
                if event is not None:
                    yield event
        if not torn:
            event = parse_event(carry)
            if event is not None:
                yield event
