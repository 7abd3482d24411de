"""The runs this window started or found running: launch, stop, pause, resume, re-attach.

One RunWatcher per active run tells when it ends (for the notification and the close
guard); the Train tab's monitor follows whichever run it shows with its own watcher.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.train.supervisor import RunWatcher, launch_engine
from engine.runs.state import request_stop


def new_run_name(project: Path) -> str:
    base = time.strftime("run-%Y%m%d-%H%M%S")
    name, n = base, 2
    while (project / "runs" / name).exists():
        name, n = f"{base}-{n}", n + 1
    return name


class RunManager(QObject):
    started = Signal(Path)
    # run folder, state (done/stopped/paused/failed/interrupted, or refused: the engine would not start), message
    finished = Signal(Path, str, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._watchers: dict[Path, RunWatcher] = {}

    # ---- starting --------------------------------------------------------------------------
    def start_new(self, project: Path, name: str | None = None) -> Path:
        """Train the project's saved settings into a new run folder."""
        run_dir = Path(project) / "runs" / (name or new_run_name(Path(project)))
        self._launch(run_dir, ["train", "--project", str(project), "--output", str(run_dir)])
        return run_dir

    def resume(self, run_dir: Path, step: int | None = None, max_steps: int | None = None,
               epochs: float | None = None) -> None:
        """Continue from the latest (or `step`'s) checkpoint; more steps or epochs train a finished run further."""
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
        watcher = RunWatcher(run_dir, None, from_end=True, parent=self)  # the file's end before the engine writes
        watcher.process = launch_engine(run_dir, args)
        self._watch(watcher)

    def attach(self, run_dir: Path) -> None:
        """Follow a run whose engine outlived an earlier window (found "running" at start)."""
        if not self.is_active(run_dir):
            self._watch(RunWatcher(Path(run_dir), None, from_end=True, parent=self))

    def _watch(self, watcher: RunWatcher) -> None:
        self._watchers[watcher.run_dir] = watcher
        watcher.ended.connect(lambda state, message, w=watcher: self._on_ended(w, state, message))
        watcher.start()
        self.started.emit(watcher.run_dir)

    def _on_ended(self, watcher: RunWatcher, state: str, message: str) -> None:
        if self._watchers.get(watcher.run_dir) is watcher:
            del self._watchers[watcher.run_dir]
        watcher.deleteLater()
        self.finished.emit(watcher.run_dir, state, message)

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
        for watcher in list(self._watchers.values()):
            watcher.stop()
        self._watchers.clear()
