"""Launch the training engine and follow a run folder from a background thread.

The engine is a separate process in its own session: closing or killing the GUI never
stops it, and the GUI follows it only through the run folder (events.jsonl, engine.pid,
engine-output.log). A RunWatcher's thread tails the events and hands them to the UI in
batches through a Qt signal, and says once how the run ended.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine.cli.launch import engine_command
from engine.runs.events import read_events
from engine.runs.state import EVENTS_NAME, OUTPUT_LOG_NAME, engine_alive
from engine.runs.tail import EventTail

BATCH_SECONDS = 0.1  # at most ten UI updates a second, however fast the engine logs
HISTORY_CHUNK = 2000  # events per signal while catching up on a long history: each UI slice stays short
LIVENESS_SECONDS = 1.0
FINAL = ("done", "stopped", "failed")


def launch_engine(run_dir: Path, args: list[str]) -> subprocess.Popen:
    """Start `whetstone-engine ARGS` detached from the GUI, its output appended to the run's log."""
    run_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    kwargs: dict = {}
    if sys.platform == "win32":
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.DETACHED_PROCESS
    else:
        kwargs["start_new_session"] = True  # Ctrl+C or a closed terminal of the GUI does not reach it
    with open(run_dir / OUTPUT_LOG_NAME, "ab") as log:
        log.write(f"--- {time.ctime()}: whetstone-engine {' '.join(args)}\n".encode())
        log.flush()
        return subprocess.Popen(engine_command(*args), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, **kwargs)


def last_error_line(run_dir: Path) -> str:
    """The engine's own one-line error from its output log, if it wrote one."""
    try:
        with open(run_dir / OUTPUT_LOG_NAME, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - 16384))
            lines = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    errors = [ln for ln in lines if ln.startswith(("error:", "internal error:"))]
    return errors[-1].split(":", 1)[1].strip() if errors else ""


def describe_end(run_dir: Path, last_status: dict | None, exit_code: int | None) -> tuple[str, str]:
    """(state, message) for a run whose engine is gone: never "done" unless it said so."""
    state = (last_status or {}).get("state")
    if state == "done":
        return "done", "Finished: the adapter is saved."
    if state == "stopped":
        paused = bool((last_status or {}).get("paused"))
        where = f" at step {last_status.get('step')}" if last_status.get("step") is not None else ""
        return ("paused" if paused else "stopped"), (
            f"{'Paused' if paused else 'Stopped'}{where}; a checkpoint is saved, so you can resume.")
    if state == "failed":
        errors = [e for e in read_events(run_dir / EVENTS_NAME) if e.get("type") == "error"]
        err = errors[-1] if errors else {}
        return "failed", " ".join(f"{err.get('message', 'The run failed.')} {err.get('hint', '')}".split())
    line = last_error_line(run_dir)
    if exit_code == 2:  # refused before training started (bad settings, model or data): the run is as it was
        return "refused", line or "The engine refused to start; see engine-output.log in the run folder."
    how = f" (exit code {exit_code})" if exit_code not in (None, 0) else ""
    detail = f": {line}" if line else ""
    return "interrupted", (f"The engine process ended without finishing{how}{detail}. It was killed or crashed; "
                           "resume continues from the last complete checkpoint.")


class RunWatcher(QObject):
    """Tails one run folder on a thread: `events(list)` in batches, then `ended(state, message)` once.

    With `process` (an engine we launched) liveness is its exit; otherwise (re-attached after a
    restart) it is the pid in engine.pid. `judge=False` only follows the file and never ends by
    itself (a view of a run; the RunManager's watcher decides how a run ended).
    """

    events = Signal(object)  # a list of event dicts (Signal(list) converts through QVariantList and mishandles None)
    ended = Signal(str, str)

    def __init__(self, run_dir: Path, process: subprocess.Popen | None = None, judge: bool = True,
                 from_end: bool = False, paced: bool = False, parent: QObject | None = None) -> None:
        """`from_end`: skip the history (a supervisor only needs what the engine writes from now on).

        `paced`: at most two batches wait for the UI, which calls `consumed()` after each. Without
        it a 100k-event history would sit in Qt's queue as Python dicts, and one full garbage
        collection over them stalled the UI for over a second.
        """
        super().__init__(parent)
        self._credit = threading.Semaphore(2) if paced else None
        self.run_dir = Path(run_dir)
        self.process = process
        self.judge = judge
        self.last_status: dict | None = None
        self._tail = EventTail(self.run_dir / EVENTS_NAME)
        if from_end:
            self._tail.offset = self._tail.size()
        self._quit = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"watch {self.run_dir.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait: float = 1.0) -> None:
        """Stop watching (the engine goes on)."""
        self._quit.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(wait)

    def consumed(self) -> None:
        """The UI handled one batch (paced watchers only)."""
        if self._credit is not None:
            self._credit.release()

    def _wait_for_credit(self) -> bool:
        while self._credit is not None and not self._credit.acquire(timeout=BATCH_SECONDS):
            if self._quit.is_set():
                return False
        return True

    def _engine_alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return engine_alive(self.run_dir)

    def _loop(self) -> None:
        tail = self._tail
        next_liveness = 0.0
        alive = True
        while not self._quit.is_set():
            batch = tail.read_new(max_bytes=1 << 20)
            if batch:
                statuses = [e for e in batch if e.get("type") == "status"]
                if statuses:
                    self.last_status = statuses[-1]
                for start in range(0, len(batch), HISTORY_CHUNK):
                    if not self._wait_for_credit():
                        return
                    self.events.emit(batch[start:start + HISTORY_CHUNK])
                if not tail.at_end():
                    continue  # a long history: hand it over in parts without waiting
            now = time.monotonic()
            if self.judge and now >= next_liveness:
                alive, next_liveness = self._engine_alive(), now + LIVENESS_SECONDS
            if not alive:
                late = tail.read_new()  # the engine's last words, written just before it exited
                if late:
                    self.last_status = next((e for e in reversed(late) if e.get("type") == "status"), self.last_status)
                    self.events.emit(late)
                code = self.process.poll() if self.process is not None else None
                self.ended.emit(*describe_end(self.run_dir, self.last_status, code))
                return
            self._quit.wait(BATCH_SECONDS)
