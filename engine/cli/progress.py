"""Output of the long commands the app runs as child processes (export, GGUF import).

With --progress-json, stdout carries one JSON object per line: {"progress": 0.4, "message": ...}
while working, the command's own objects, then {"done": "/path"}; or {"error", "hint", "kind"}
just before the usual `error:` line and exit 2. Without it, progress goes to stderr as text and
the result path to stdout. SIGTERM (the app's Cancel) stops the command like Ctrl+C, so it can
remove what it made (signals can only be handled on the main thread).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from engine.errors import UserError


class ProgressOutput:
    """Progress, errors and the result of one command, as JSON lines or as text."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def emit(self, obj: dict) -> None:
        sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def progress(self, fraction: float, message: str) -> None:
        if self.as_json:
            self.emit({"progress": round(fraction, 3), "message": message})
        else:
            print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    def error(self, exc: UserError) -> None:
        """The JSON error object (the `error:` line itself is the CLI's, on stderr)."""
        if self.as_json:
            self.emit({"error": exc.message, "hint": exc.hint, "kind": exc.kind})

    def done(self, path: object) -> None:
        if self.as_json:
            self.emit({"done": str(path)})
        else:
            print(path)


@contextmanager
def sigterm_stops() -> Iterator[None]:
    """While inside, SIGTERM raises KeyboardInterrupt, as Ctrl+C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt
