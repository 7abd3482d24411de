"""What the user does to a project or a browser item: create, rename, duplicate, delete,
show in the file manager, export.

The disk work runs on the thread pool through the workspace model; this class only asks the
questions (through the window's dialogs, which tests replace) and starts it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QObject, Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QWidget

from app.shell.project_browser import ProjectBrowser
from app.shell.workspace_model import WorkspaceModel


class Dialogs(Protocol):
    """The window's modal questions (one place, so tests can answer them)."""

    def ask_text(self, title: str, label: str, text: str = "") -> str | None: ...
    def confirm(self, title: str, message: str, action: str) -> bool: ...
    def warn(self, title: str, message: str, hint: str = "") -> None: ...


class ProjectActions(QObject):
    def __init__(
        self,
        workspace_model: WorkspaceModel,
        browser: ProjectBrowser,
        dialogs: Dialogs,
        dialog_parent: QWidget,
    ) -> None:
        super().__init__(dialog_parent)
        self.workspace_model = workspace_model
        self.browser = browser
        self.dialogs = dialogs
        self.dialog_parent = dialog_parent
        self.current_project: Path | None = None
        browser.projectSelected.connect(self._on_project_selected)

    def _on_project_selected(self, path) -> None:
        self.current_project = path

    def _current(self):
        return self.workspace_model.project(self.current_project)

    # ---- projects ------------------------------------------------------------------------
    def new_project(self) -> None:
        name = self.dialogs.ask_text("New project", "Project name:")
        if name:
            self.workspace_model.create_project(name, on_done=self.browser.select_project)

    def rename_project(self) -> None:
        project = self._current()
        if project is None:
            return
        name = self.dialogs.ask_text("Rename project", "New name:", project.name)
        if name and name != project.name:
            self.workspace_model.rename_project(project.path, name)

    def duplicate_project(self) -> None:
        project = self._current()
        if project is None:
            return
        name = self.dialogs.ask_text(
            "Duplicate project",
            "Name of the copy (datasets and settings are copied, runs are not):",
            f"{project.name} copy",
        )
        if name:
            self.workspace_model.duplicate_project(project.path, name, on_done=self.browser.select_project)

    def delete_project(self) -> None:
        project = self._current()
        if project is None:
            return
        runs = len(project.runs)
        detail = f" and its {runs} run{'s' if runs != 1 else ''} (checkpoints and adapters)" if runs else ""
        message = (
            f"Delete the project “{project.name}”{detail}?\n\n{project.path}\n\n"
            "Its folder is removed from disk. This cannot be undone."
        )
        if self.dialogs.confirm("Delete project", message, "Delete"):
            self.workspace_model.delete_project(project.path)

    # ---- items ---------------------------------------------------------------------------
    def reveal_current(self) -> None:
        _kind, path = self.browser.current_item()
        if path is not None:
            self.reveal(path)

    def reveal(self, path: Path) -> None:
        path = Path(path)
        folder = path if path.is_dir() else path.parent
        if not folder.exists():
            self.dialogs.warn("Not found", f"{folder} no longer exists.")
            return
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def export_source(self) -> Path | None:
        """The run, adapter or checkpoint selected in the browser that can be exported."""
        kind, path = self.browser.current_item()
        if kind == "run":
            project = self._current()
            run = next((r for r in project.runs if r.path == path), None) if project else None
            return path if run is not None and (run.adapter or run.checkpoints) else None
        return path if kind in ("adapter", "checkpoint") else None

    def export_current(self):
        """The export dialog for the selected item (returned for tests), or a message why not."""
        return self.export(self.export_source())

    def export(self, source: Path | None):
        """The export dialog for a run, adapter or checkpoint of the current project."""
        from app.export.dialog import ExportDialog

        if source is None or self.current_project is None:
            self.dialogs.warn("Nothing to export", "Select a run that has an adapter or a checkpoint.")
            return None
        dialog = ExportDialog(self.current_project, source, parent=self.dialog_parent)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.exported.connect(lambda _path: self.workspace_model.refresh())
        dialog.show()
        return dialog
