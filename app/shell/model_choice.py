"""The model library for the window: its dialog, the scan the run setup lists, and the choice of
a project's base model (written into project.toml off the UI thread).

Scans read safetensors headers, so they run on the thread pool; the results come back as signals.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from app.infra.tasks import TaskRunner


class ModelChoice(QObject):
    models_scanned = Signal(list)  # the library's ModelInfo list
    model_set = Signal(str)  # the folder that is now the current project's base model
    failed = Signal(str, str)  # message, hint
    status = Signal(str)

    def __init__(self, workspace_root: Path, tasks: TaskRunner, dialog_parent: QWidget) -> None:
        super().__init__(dialog_parent)
        self.workspace_root = Path(workspace_root)
        self.tasks = tasks
        self.dialog_parent = dialog_parent
        self.current_project: Path | None = None  # the project "Use for this project" writes into
        self.dialog = None  # the ModelLibraryDialog, made when first opened

    def set_project(self, path: Path | None) -> None:
        self.current_project = path
        if self.dialog is not None:
            self.dialog.set_can_choose(path is not None)

    def scan(self) -> None:
        """The library's models for the run setup."""
        from engine.models.library import ModelLibrary

        library = ModelLibrary(self.workspace_root)
        self.tasks.run(
            lambda _p, cancelled: library.scan(cancel=cancelled), self.models_scanned.emit, name="model scan"
        )

    def open(self):
        """Show the library dialog (returned for tests)."""
        from app.library.dialog import ModelLibraryDialog
        from engine.models.library import ModelLibrary

        if self.dialog is None:
            self.dialog = ModelLibraryDialog(
                ModelLibrary(self.workspace_root), self.tasks, parent=self.dialog_parent
            )
            self.dialog.modelChosen.connect(self.use_model)
            self.dialog.finished.connect(lambda _r: self.scan())
        else:
            self.dialog.rescan()
        self.dialog.set_can_choose(self.current_project is not None)
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    def add_folder(self) -> None:
        self.open().choose_folder_to_add()

    def import_gguf(self) -> None:
        self.open().choose_gguf_to_import()

    def use_model(self, info) -> None:
        """Set the chosen library model as the current project's base model."""
        from engine.workspace import load_project_config, save_project_config

        path = self.current_project
        if path is None:
            self.failed.emit("No project selected.", "Select a project first, then choose its model.")
            return

        def change(_p, _c):
            config = load_project_config(path)
            config = config.with_overrides(
                {"model.path": str(info.path), "model.trust_remote_code": bool(info.needs_remote_code)}
            )
            save_project_config(path, config)

        self.tasks.run(
            change, lambda _r: self.model_set.emit(str(info.path)), self.failed.emit, name="set model"
        )
        self.status.emit(f"{info.name} is now the base model of this project.")

    def shutdown(self) -> None:
        if self.dialog is not None:
            self.dialog.shutdown()
