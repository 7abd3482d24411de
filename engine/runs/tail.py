"""Follow a run's events.jsonl as it grows: only complete lines, never a torn one.

A reader (the GUI's supervisor thread, a script) calls `read_new()` as often as it likes;
each call returns the events appended since the last one. Qt-free and torch-free.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class EventTail:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.offset = 0
        self._partial = b""

    def read_new(self, max_bytes: int = 8 << 20) -> list[dict[str, Any]]:
        """Events appended since the last call (at most ~max_bytes of them, so a huge history comes in parts)."""
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
        end = data.rfind(b"\n") + 1
        self._partial = data[end:]  # a line still being written waits for its newline
        events = []
        for line in data[:end].splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def at_end(self) -> bool:
        return self.size() <= self.offset
