"""The run's event log: `RUN_DIR/events.jsonl`, one JSON object per line.

Every event has `type` and `time`. Types: status (`state`), metrics, eval, checkpoint,
warning, error (`kind`, `message`, `hint`), info. Lines are appended and flushed; state
changes are fsynced too, so a reader (the GUI) never misses how a run ended.
"""

from __future__ import annotations

import json
import math
import os
import time
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
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the run)
        self._echo = echo

    def emit(self, type_: str, durable: bool = False, **fields: Any) -> dict[str, Any]:
        event = {"type": type_, "time": round(time.time(), 3)}
        event.update({k: _clean(v) for k, v in fields.items()})
        if self._handle is not None:
            self._handle.write(json.dumps(event, ensure_ascii=False) + "\n")
            self._handle.flush()
            if durable:
                os.fsync(self._handle.fileno())
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


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """All complete events of a run; a torn last line (killed writer) is ignored."""
    events = []
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if not line.endswith("\n"):
                    break
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    except FileNotFoundError:
        return []
    return events
