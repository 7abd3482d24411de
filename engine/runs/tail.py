"""Follow a run's events.jsonl as it grows: only complete lines, never a torn one.

A reader (the GUI's run watcher, a script) calls `read_new()` as often as it likes; each call
returns the events appended since the last one. `position` is the byte offset just after the
last complete line returned, so a reader can hand on exactly where it stopped (the GUI splices
a run's history and its live events there). Qt-free and torch-free.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from engine.runs.events import parse_event


class EventTail:
    def __init__(self, path: str | Path, offset: int = 0) -> None:
        self.path = Path(path)
        self.offset = offset  # bytes read so far (the start of an unfinished line is among them)
        self._partial = b""

    @property
    def position(self) -> int:
        """The offset just after the last complete line handed out."""
        return self.offset - len(self._partial)

    def read_new(self, max_bytes: int = 8 << 20, end: int | None = None) -> list[dict[str, Any]]:
        """Events appended since the last call (at most ~max_bytes of them, so a huge history comes
        in parts), and none from at or after byte `end` when given."""
        if end is not None:
            max_bytes = max(0, min(max_bytes, end - self.offset))
        try:
            with open(self.path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size < self.offset:  # replaced by a shorter file: start over
                    self.offset, self._partial = 0, b""
                handle.seek(self.offset)
                chunk = handle.read(max_bytes)
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        data = self._partial + chunk
        end_of_lines = data.rfind(b"\n") + 1
        self._partial = data[end_of_lines:]  # a line still being written waits for its newline
        events = []
        for line in data[:end_of_lines].splitlines():
            event = parse_event(line)
            if event is not None:
                events.append(event)
        return events

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def at_end(self) -> bool:
        return self.size() <= self.offset
