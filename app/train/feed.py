"""One run's events for a view, in file order: its history once, then what the engine writes.

A view (the run monitor) asks the RunManager for a RunFeed instead of following the run
folder itself. The feed reads the history up to where the manager's watcher has handed
events on (a HistoryReader, paced), and then passes on the watcher's batches. A batch that
starts beyond what the feed has passed on (the run was shown before its engine started, or
re-attached) first has the gap read from the file, so nothing is lost or shown twice.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.train.supervisor import EventBatch, HistoryReader
from engine.runs.state import EVENTS_NAME


class RunFeed(QObject):
    events = Signal(object)  # a list of event dicts, in file order
    # From a HistoryReader's thread to the feed on the UI thread (queued): reader, events / reader.
    _history = Signal(object, object)
    _history_done = Signal(object)

    def __init__(
        self,
        run_dir: Path,
        history_end: int,
        on_close: Callable[[RunFeed], None] | None = None,
        parent: QObject | None = None,
    ) -> None:
        """`history_end`: the byte offset where live batches will start (the file's size if none will)."""
        super().__init__(parent)
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / EVENTS_NAME
        self._passed = 0  # bytes of the log passed on (or read and found empty)
        self._queue: deque[EventBatch] = deque()
        self._reader: HistoryReader | None = None
        self._on_close = on_close
        self.closed = False
        self._history.connect(self._on_history)
        self._history_done.connect(self._on_history_done)
        self._read(0, history_end)

    def loading(self) -> bool:
        """Whether part of the history is still being read."""
        return self._reader is not None

    def push(self, batch: EventBatch) -> None:
        """A live batch from the run's watcher (the RunManager calls this on the UI thread)."""
        if self.closed:
            return
        self._queue.append(batch)
        self._drain()

    def close(self) -> None:
        """Stop passing events on (the view shows another run, or closes)."""
        if self.closed:
            return
        self.closed = True
        self._queue.clear()
        if self._reader is not None:
            self._reader.stop()
            self._reader = None
        if self._on_close is not None:
            self._on_close(self)

    def _read(self, start: int, end: int) -> None:
        if end <= start:
            self._passed = max(self._passed, end)
            return
        holder: list[HistoryReader] = []  # the callbacks name their reader: a stale one is ignored

        def send(signal: Signal, *values: object) -> None:
            try:
                signal.emit(holder[0], *values)
            except RuntimeError:  # the feed was deleted without being closed: nobody to tell
                holder[0].stop()

        reader = HistoryReader(
            self.path,
            start,
            end,
            lambda events: send(self._history, events),
            lambda: send(self._history_done),
        )
        holder.append(reader)
        self._reader = reader
        reader.start()

    def _on_history(self, reader: HistoryReader, events: list) -> None:
        if reader is not self._reader:
            return  # queued before the feed was closed
        self.events.emit(events)
        reader.consumed()  # the view has handled it (a direct connection): the next part may come

    def _on_history_done(self, reader: HistoryReader) -> None:
        if reader is not self._reader:
            return
        self._passed = reader.end
        self._reader = None
        self._drain()

    def _drain(self) -> None:
        while self._queue and self._reader is None:
            batch = self._queue[0]
            if batch.end <= self._passed:
                self._queue.popleft()  # already passed on as history
            elif batch.start > self._passed:
                self._read(self._passed, batch.start)  # a gap: read it first, then go on
                if self._reader is None:
                    continue
                return
            else:
                self._queue.popleft()
                self._passed = batch.end
                self.events.emit(batch.events)
