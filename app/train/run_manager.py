"""The runs this window started or found running: launch, stop, pause, resume, re-attach.

One RunWatcher per active run follows its events.jsonl: the only reader of a live run in
the app. Its batches go to `events` (the workspace model refreshes on status and checkpoint
events) and to the RunFeeds of the views that show that run (`follow`); its verdict, when
the engine exits, goes to `finished` (the notification, the monitor, the close guard).
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.train.feed import RunFeed
from app.train.supervisor import EventBatch, RunWatcher, launch_engine
from engine.runs.state import EVENTS_NAME, request_stop
from engine.runs.verdict import Verdict


def new_run_name(project: Path) -> str:
    base = time.strftime("run-%Y%m%d-%H%M%S")
    name, n = base, 2
    while (project / "runs" / name).exists():
        name, n = f"{base}-{n}", n + 1
    return name


class RunManager(QObject):
    started = Signal(Path)
    # run folder, state (done/stopped/paused/failed/interrupted, or refused: the engine would
    # not start), message
    finished = Signal(Path, str, str)
    events = Signal(Path, object)  # run folder, a list of the events its engine just wrote
    # From a watcher's thread to the manager on the UI thread (queued): watcher, EventBatch / Verdict.
    _batch = Signal(object, object)
    _ended = Signal(object, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._watchers: dict[Path, RunWatcher] = {}
        self._passed: dict[Path, int] = {}  # per active run: the log's bytes handed on so far
        self._feeds: dict[Path, list[RunFeed]] = {}
        self._shut_down = False
        self._batch.connect(self._on_batch)
        self._ended.connect(self._on_ended)

    # ---- starting --------------------------------------------------------------------------
    def start_new(self, project: Path, name: str | None = None) -> Path:
        """Train the project's saved settings into a new run folder."""
        run_dir = Path(project) / "runs" / (name or new_run_name(Path(project)))
        self._launch(run_dir, ["train", "--project", str(project), "--output", str(run_dir)])
        return run_dir

    def resume(
        self,
        run_dir: Path,
        step: int | None = None,
        max_steps: int | None = None,
        epochs: float | None = None,
    ) -> None:
        """Continue from the latest (or `step`'s) checkpoint;
        more steps or epochs train a finished run further."""
        args = ["train", "--output", str(run_dir), "--resume"]
        if step is not None:
            args += ["--resume-from", str(step)]
        if max_steps is not None:
            args += ["--max-steps", str(max_steps)]
        if epochs is not None:
            args += ["--epochs", str(epochs)]
        self._launch(Path(run_dir), args)

    def _launch(self, run_dir: Path, args: list[str]) -> None:
        if self.is_active(run_dir):
            raise RuntimeError(f"{run_dir.name} is already running")
        watcher = self._new_watcher(run_dir)  # from the file's end, before the engine writes
        watcher.process = launch_engine(run_dir, args)
        self._watch(watcher)

    def attach(self, run_dir: Path) -> None:
        """Follow a run whose engine outlived an earlier window (found "running" at start)."""
        if not self.is_active(run_dir) and not self._shut_down:  # a closed window's last scans attach nothing
            self._watch(self._new_watcher(Path(run_dir)))

    def _new_watcher(self, run_dir: Path) -> RunWatcher:
        holder: list[RunWatcher] = []  # the callbacks name their watcher: a replaced one is ignored

        def send(signal: Signal, value: object) -> None:
            try:
                signal.emit(holder[0], value)
            except RuntimeError:  # the manager is gone (its window was deleted): nobody to tell
                holder[0].stop()

        watcher = RunWatcher(
            run_dir, lambda batch: send(self._batch, batch), lambda verdict: send(self._ended, verdict)
        )
        holder.append(watcher)
        return watcher

    def _watch(self, watcher: RunWatcher) -> None:
        self._watchers[watcher.run_dir] = watcher
        self._passed[watcher.run_dir] = watcher.start_offset
        watcher.start()
        self.started.emit(watcher.run_dir)

    def _on_batch(self, watcher: RunWatcher, batch: EventBatch) -> None:
        run_dir = watcher.run_dir
        if self._watchers.get(run_dir) is not watcher:
            return  # queued before shutdown
        self._passed[run_dir] = batch.end
        for feed in list(self._feeds.get(run_dir, ())):
            feed.push(batch)
        self.events.emit(run_dir, batch.events)

    def _on_ended(self, watcher: RunWatcher, verdict: Verdict) -> None:
        if self._watchers.get(watcher.run_dir) is not watcher:
            return  # stopped by shutdown
        del self._watchers[watcher.run_dir]
        self._passed.pop(watcher.run_dir, None)
        self.finished.emit(watcher.run_dir, verdict.state, verdict.text)

    # ---- views -----------------------------------------------------------------------------
    def follow(self, run_dir: Path, parent: QObject | None = None) -> RunFeed:
        """A feed of the run's events for a view: its history, then (while it runs) what its engine writes.

        Close the feed when the view no longer shows the run.
        """
        run_dir = Path(run_dir)
        end = self._passed.get(run_dir)
        if end is None:  # not running: the whole log as it is; a later engine's batches continue from there
            try:
                end = (run_dir / EVENTS_NAME).stat().st_size
            except OSError:
                end = 0
        feed = RunFeed(run_dir, end, on_close=self._unfollow, parent=parent)
        self._feeds.setdefault(run_dir, []).append(feed)
        return feed

    def _unfollow(self, feed: RunFeed) -> None:
        feeds = self._feeds.get(feed.run_dir, [])
        if feed in feeds:
            feeds.remove(feed)
        if not feeds:
            self._feeds.pop(feed.run_dir, None)

    # ---- control ---------------------------------------------------------------------------
    def stop(self, run_dir: Path, pause: bool = False) -> None:
        """The engine finishes its step, saves a checkpoint and exits (a STOP file; works re-attached too)."""
        request_stop(run_dir, pause=pause)

    def is_active(self, run_dir: Path) -> bool:
        return Path(run_dir) in self._watchers

    def active(self) -> list[Path]:
        return list(self._watchers)

    def shutdown(self) -> None:
        """Stop following (engines left running go on; the next window re-attaches)."""
        self._shut_down = True
        for watcher in list(self._watchers.values()):
            watcher.stop()
        self._watchers.clear()
        self._passed.clear()
