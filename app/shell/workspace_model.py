"""The workspace as the UI sees it: project summaries, kept fresh from the disk.

Scans run on the thread pool; a file-system watcher plus a short debounce triggers them,
so an outside change (a file copied in, a project deleted in the file manager, a run
folder or checkpoint appearing) shows up without a manual refresh, and a scan never blocks
the window. The watcher sees folders, not the files a run appends to: a run writes its
events.jsonl many times a second, and rescanning the workspace (and reloading every page)
on each write is what this avoids. Live runs reach the model through `note_run_events`
(the RunManager's one watcher per run): only status and checkpoint events rescan.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal

from app.infra.tasks import TaskRunner

DEBOUNCE_MS = 250
RESCAN_EVENTS = ("status", "checkpoint")  # the events that change what a scan shows besides progress


class WorkspaceModel(QObject):
    changed = Signal(list)  # list[engine.workspace.ProjectSummary]
    failed = Signal(str, str)  # message, hint: an action or a scan went wrong
    busy = Signal(str)  # what a long action is doing ("" when idle)

    def __init__(self, workspace, tasks: TaskRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.workspace = workspace
        self._tasks = tasks
        self.projects: list = []
        self._scanning = False
        self._dirty = False
        self._watcher = QFileSystemWatcher(self)
        self._watcher.directoryChanged.connect(self._on_disk_change)
        self._watcher.fileChanged.connect(self._on_disk_change)
        self._debounce = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._debounce.timeout.connect(self.refresh)
        self.scans = 0

    # ---- reading -------------------------------------------------------------------------
    def refresh(self) -> None:
        """Rescan in the background; calls during a scan coalesce into one more scan."""
        if self._scanning:
            self._dirty = True
            return
        self._scanning = True
        self._tasks.run(
            lambda _p, _c: self.workspace.list_projects(),
            self._on_scanned,
            self._on_scan_failed,
            name="scan workspace",
        )

    def project(self, path: Path | str | None):
        if path is None:
            return None
        key = Path(path)
        return next((p for p in self.projects if p.path == key), None)

    def _on_scanned(self, projects: list) -> None:
        self.projects = projects
        self.scans += 1
        self._scanning = False
        self._watch(projects)
        self.changed.emit(projects)
        if self._dirty:
            self._dirty = False
            self.refresh()

    def _on_scan_failed(self, message: str, hint: str) -> None:
        self._scanning = False
        self.failed.emit(f"Cannot read the workspace: {message}", hint)

    def _on_disk_change(self, _path: str) -> None:
        self._debounce.start()

    def note_run_events(self, _run_dir: Path, events: list) -> None:
        """Events a live run just wrote: rescan when its state changed or a checkpoint was saved."""
        if any(event.get("type") in RESCAN_EVENTS for event in events):
            self._debounce.start()

    def _watch(self, projects: list) -> None:
        # The root too: it sees projects/ appear when another program makes the first project.
        wanted = {str(self.workspace.root), str(self.workspace.projects_dir)}
        for project in projects:
            wanted.add(str(project.path))
            for sub in ("datasets", "runs", "exports"):
                wanted.add(str(project.path / sub))
            for run in project.runs:  # folders only: files appearing count (engine.pid), logs growing do not
                wanted.add(str(run.path))
                wanted.add(str(run.path / "checkpoints"))
        wanted = {p for p in wanted if Path(p).exists()}
        current = set(self._watcher.directories()) | set(self._watcher.files())
        if current - wanted:
            self._watcher.removePaths(list(current - wanted))
        if wanted - current:
            self._watcher.addPaths(sorted(wanted - current))

    # ---- changing ------------------------------------------------------------------------
    def _act(self, what: str, fn: Callable, on_done: Callable | None = None) -> None:
        """Run a workspace change off the UI thread (copies and deletes can be large)."""
        self.busy.emit(what)

        def done(result) -> None:
            self.busy.emit("")
            self.refresh()
            if on_done:
                on_done(result)

        def failed(message: str, hint: str) -> None:
            self.busy.emit("")
            self.refresh()
            self.failed.emit(message, hint)

        self._tasks.run(lambda _p, _c: fn(), done, failed, name=what)

    def create_project(self, name: str, on_done: Callable | None = None) -> None:
        self._act(f"Creating {name}…", lambda: self.workspace.create_project(name), on_done)

    def rename_project(self, path: Path, new_name: str, on_done: Callable | None = None) -> None:
        self._act(f"Renaming to {new_name}…", lambda: self.workspace.rename_project(path, new_name), on_done)

    def duplicate_project(self, path: Path, new_name: str, on_done: Callable | None = None) -> None:
        self._act(
            f"Duplicating as {new_name}…", lambda: self.workspace.duplicate_project(path, new_name), on_done
        )

    def delete_project(self, path: Path, on_done: Callable | None = None) -> None:
        self._act(f"Deleting {path.name}…", lambda: self.workspace.delete_project(path), on_done)
