"""Launch the training engine and follow a run folder from background threads.

The engine is a separate process in its own session: closing or killing the GUI never
stops it, and the GUI follows it only through the run folder (events.jsonl, engine.pid,
engine-output.log). A RunWatcher's thread tails the events of one active run and hands them
to the UI in batches (with their byte range), and says once how the run
ended (engine.runs.verdict judges). A HistoryReader reads a stretch of a run's log once, in
paced parts, for a view that opens a run partway through. Both are plain objects that call back
from their thread; their owners (RunManager, RunFeed) turn the calls into queued Qt signals.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.cli.launch import engine_command, engine_environment
from engine.cli.protocol import error_message
from engine.cli.protocol import last_error_line as protocol_last_error_line
from engine.runs.state import EVENTS_NAME, OUTPUT_LOG_NAME, engine_alive, last_events
from engine.runs.tail import EventTail
from engine.runs.verdict import Verdict, judge_run

BATCH_SECONDS = 0.1  # at most ten UI updates a second, however fast the engine logs
HISTORY_CHUNK = 2000  # events per signal while catching up on a long history: each UI slice stays short
LIVENESS_SECONDS = 1.0
READ_BYTES = 1 << 20


@dataclass(frozen=True)
class EventBatch:
    """Events of one run in file order, and the bytes they came from: [start, end)."""

    start: int
    end: int
    events: list


def launch_engine(run_dir: Path, args: list[str]) -> subprocess.Popen:
    """Start `whetstone-engine ARGS` detached from the GUI, its output appended to the run's log."""
    run_dir.mkdir(parents=True, exist_ok=True)
    env = engine_environment()
    kwargs: dict = {}
    if sys.platform == "win32":
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.DETACHED_PROCESS
    else:
        kwargs["start_new_session"] = True  # Ctrl+C or a closed terminal of the GUI does not reach it
    with open(run_dir / OUTPUT_LOG_NAME, "ab") as log:
        log.write(f"--- {time.ctime()}: whetstone-engine {' '.join(args)}\n".encode())
        log.flush()
        return subprocess.Popen(
            engine_command(*args),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            **kwargs,
        )


def last_error_line(run_dir: Path) -> str:
    """The engine's own one-line error from its output log, if it wrote one."""
    try:
        with open(run_dir / OUTPUT_LOG_NAME, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - 16384))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return error_message(protocol_last_error_line(text))


def judge_end(run_dir: Path, status: dict | None, error: dict | None, exit_code: int | None) -> Verdict:
    """How a run ended whose engine is gone: never "done" unless it said so."""
    return judge_run(status, error, alive=False, exit_code=exit_code, error_line=last_error_line(run_dir))


class RunWatcher:
    """Tails one active run on a thread: `on_batch(EventBatch)` as the engine writes, then `on_end(Verdict)`.

    It starts at the log's end as it is now (the RunManager creates it just before the engine
    writes, or when it re-attaches to a running engine). With `process` (an engine we launched)
    liveness is its exit; otherwise it is the pid in engine.pid. The callbacks run on the
    watcher's thread: the owner turns them into queued Qt signals (a plain object, so no Qt
    object's lifetime depends on a thread's).
    """

    def __init__(
        self,
        run_dir: Path,
        on_batch: Callable[[EventBatch], None],
        on_end: Callable[[Verdict], None],
        process: subprocess.Popen | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self._on_batch, self._on_end = on_batch, on_end
        self.process = process
        self._tail = EventTail(self.run_dir / EVENTS_NAME)
        self._tail.offset = self._tail.size()
        self.start_offset = self._tail.offset
        self.last_status: dict | None = None
        self.last_error: dict | None = None
        self._quit = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"watch {self.run_dir.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait: float = 1.0) -> None:
        """Stop watching (the engine goes on)."""
        self._quit.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(wait)

    def _engine_alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return engine_alive(self.run_dir)

    def _read(self, max_bytes: int = READ_BYTES) -> bool:
        """Hand on what the engine wrote since the last read; True if there was anything."""
        start = self._tail.position
        events = self._tail.read_new(max_bytes=max_bytes)
        for event in events:
            kind = event.get("type")
            if kind == "status":
                self.last_status = event
            elif kind == "error":
                self.last_error = event
        if events and not self._quit.is_set():
            self._on_batch(EventBatch(start, self._tail.position, events))
        return bool(events)

    def _loop(self) -> None:
        if self.process is None:  # re-attached: what the run said before we came matters for its end
            seen = last_events(self._tail.path, end=self.start_offset)
            self.last_status, self.last_error = seen.status, seen.error
        next_liveness = 0.0
        while not self._quit.is_set():
            if self._read() and not self._tail.at_end():
                continue  # more than one read's worth: hand it over in parts without waiting
            now = time.monotonic()
            if now >= next_liveness:
                if not self._engine_alive():
                    while self._read() and not self._tail.at_end():
                        pass  # the engine's last words, written just before it exited
                    code = self.process.poll() if self.process is not None else None
                    verdict = judge_end(self.run_dir, self.last_status, self.last_error, code)
                    if not self._quit.is_set():
                        self._on_end(verdict)
                    return
                next_liveness = now + LIVENESS_SECONDS
            self._quit.wait(BATCH_SECONDS)


class HistoryReader:
    """Reads bytes [start, end) of a run's log once, on a thread: `on_events(list)` per part, then `on_done()`

    The callbacks run on the reader's thread (they emit a Qt signal of the object that owns the
    reader). At most two parts wait for the UI, which calls `consumed()` after each. Without this
    pacing a 100k-event history would sit in Qt's queue as Python dicts, and one full garbage
    collection over them stalled the UI for over a second.
    """

    def __init__(
        self, path: Path, start: int, end: int, on_events: Callable[[list], None], on_done: Callable[[], None]
    ) -> None:
        self._tail = EventTail(path, offset=start)
        self.end = end
        self._on_events, self._on_done = on_events, on_done
        self._credit = threading.Semaphore(2)
        self._quit = threading.Event()
        name = f"history {Path(path).parent.name}"
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait: float = 1.0) -> None:
        """No more callbacks once this returns (unless the thread is stuck in a read for over `wait` s)."""
        self._quit.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(wait)

    def consumed(self) -> None:
        self._credit.release()

    def _loop(self) -> None:
        while not self._quit.is_set() and self._tail.offset < self.end:
            before = self._tail.offset
            batch = self._tail.read_new(max_bytes=READ_BYTES, end=self.end)
            for start in range(0, len(batch), HISTORY_CHUNK):
                while not self._credit.acquire(timeout=BATCH_SECONDS):
                    if self._quit.is_set():
                        return
                if self._quit.is_set():
                    return
                self._on_events(batch[start : start + HISTORY_CHUNK])
            if self._tail.offset == before:
                break  # the file is shorter than expected (replaced or truncated): nothing more to read
        if not self._quit.is_set():
            self._on_done()
