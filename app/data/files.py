"""The Data tab's file actions: save (atomic, on a worker), import a copy, export; their dialogs.

A collaborator of DataPage: the page tells it the open project and document; it reports
through its signals and never reaches into the page.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from app.data.document import DatasetDocument
from app.data.row_editor import RowEditor
from app.data.toolbar import DataToolbar
from app.infra.tasks import Task, TaskRunner, while_alive


class DatasetFiles(QObject):
    failed = Signal(str, str)  # message, hint
    status = Signal(str)
    imported = Signal(object)  # Path of the copy in the project's datasets folder

    def __init__(
        self, tasks: TaskRunner, toolbar: DataToolbar, editor: RowEditor, dialog_parent: QWidget
    ) -> None:
        super().__init__(dialog_parent)
        self.tasks = tasks
        self.toolbar = toolbar
        self.editor = editor
        self.dialog_parent = dialog_parent
        self.project = None  # the project summary the page shows
        self.document: DatasetDocument | None = None  # the open dataset
        self._saving = False

    # ---- dialogs (tests replace these) --------------------------------------------------------
    def choose_import_file(self) -> str:
        path, _f = QFileDialog.getOpenFileName(
            self.dialog_parent,
            "Import a data file",
            str(Path.home()),
            "Data files (*.jsonl *.ndjson *.json *.csv *.tsv *.parquet *.txt *.md);;All files (*)",
        )
        return path

    def choose_export_file(self, suggested: str) -> str:
        path, _f = QFileDialog.getSaveFileName(
            self.dialog_parent, "Export the dataset", suggested, "JSON Lines (*.jsonl);;Parquet (*.parquet)"
        )
        return path

    # ---- save, import, export -------------------------------------------------------------------------
    def ask_save_before_training(self, name: str) -> str:
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Unsaved dataset edits",
            f"{name} has edits that are not saved. The run trains on the file as saved.",
            QMessageBox.StandardButton.Cancel,
            self.dialog_parent,
        )
        save = box.addButton("Save and start", QMessageBox.ButtonRole.AcceptRole)
        anyway = box.addButton("Start without them", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(save)
        box.exec()
        return {save: "save", anyway: "start"}.get(box.clickedButton(), "cancel")

    def ready_for_training(self, data_path: Path) -> bool:
        """Before a run starts on `data_path`: offer to save unsaved edits of that file."""
        document = self.document
        if document is None or not document.is_dirty() or not data_path.name:
            return True
        if data_path.resolve() != document.path.resolve():
            return True
        answer = self.ask_save_before_training(document.path.name)
        return answer == "start" or (answer == "save" and self.save(wait=True))

    def save(self, wait: bool = False) -> bool:
        """Save on a worker thread; `wait` blocks until written (closing the window or the dataset)."""
        document = self.document
        if document is None:
            return True
        if self._saving and not wait:
            self.status.emit("Still saving; the next save waits for it.")
            return True
        self.editor.commit()
        snapshot, ops = document.snapshot()
        target = document.save_target()
        task = Task(
            lambda progress, cancelled: DatasetDocument.write(snapshot, target, progress, cancelled), "save"
        )
        outcome: dict = {}
        task.progress.connect(self.toolbar.show_progress)
        task.finished.connect(
            while_alive(self, lambda kept: self._on_saved(document, target, ops, kept, outcome))
        )
        task.failed.connect(while_alive(self, lambda m, h: self._on_save_failed(m, h, outcome)))
        if wait:
            task.run()  # direct: the window is closing, its event loop may not run again
            return outcome.get("ok", False)
        self._saving = True
        self.tasks.start(task)
        return True

    def _on_saved(self, document: DatasetDocument, target: Path, ops: int, kept, outcome: dict) -> None:
        outcome["ok"] = True
        self._saving = False
        self.toolbar.show_progress(0, 0, "")
        before = document.path
        document.saved(target, ops)
        note = f" The file as imported is kept in {kept.parent}." if kept else ""
        if target != before:
            note += f" Saved as {target.name}: edits are kept as JSON Lines."
            self._point_project_at(before, target)
            self.toolbar.add_dataset(target)
        self.status.emit(f"Saved {target.name}.{note}")
        self.toolbar.update_state()

    def _on_save_failed(self, message: str, hint: str, outcome: dict) -> None:
        outcome["ok"] = False
        self._saving = False
        self.toolbar.show_progress(0, 0, "")
        self.failed.emit(
            f"The dataset was not saved: {message}", f"{hint} Your edits are kept in the autosave journal."
        )

    def _point_project_at(self, before: Path, target: Path) -> None:
        """After saving a CSV/JSON/text dataset as JSONL, the project trains on the saved file."""
        from engine.workspace import load_project_config, save_project_config

        if self.project is None or not self.project.dataset:
            return
        config = load_project_config(self.project.path)
        if Path(config.data.path).resolve() != before.resolve():
            return
        config.data.path = str(target)
        save_project_config(self.project.path, config)

    def import_file(self) -> None:
        from engine.data.project_files import import_dataset

        if self.project is None:
            return
        source = self.choose_import_file()
        if not source:
            return
        project_dir = self.project.path
        self.tasks.run(
            lambda _p, _c: import_dataset(project_dir, source),
            while_alive(self, self._on_imported),
            while_alive(self, lambda m, h: self.failed.emit(m, h)),
            name="import",
        )

    def _on_imported(self, path: Path) -> None:
        self.status.emit(f"Imported {path.name} (a copy; your file is untouched).")
        self.toolbar.add_dataset(path)
        self.imported.emit(path)

    def add_chat_row(self, path: Path, messages: list[dict]) -> None:
        """A chat becomes a row at the end of a dataset: through the editor (undoable) when it is open."""
        from functools import partial

        from engine.data.shapes import record_for_shape

        self.add_record(path, partial(record_for_shape, messages), ["messages"], "Add row from chat")

    def add_record(self, path: Path, build, new_columns: list[str], text: str, added=None) -> None:
        """`build(shape)`'s record at the end of a dataset (a new one gets the shape of `new_columns`):
        through the editor (undoable, journalled) when it is open. A DataError from `build` is shown;
        `added()`, if given, is called once the record is in."""
        from engine.data.project_files import append_records
        from engine.data.shapes import detect_shape
        from engine.errors import UserError

        document = self.document
        if document is not None and document.path == Path(path):
            try:
                record = build(document.shape)
            except UserError as exc:
                self.failed.emit(exc.message, exc.hint)
                return
            document.insert_records([len(document.store)], [record], text)
            self.status.emit(f"Added a row to {path.name} (open in the Data tab, not saved yet).")
            if added is not None:
                added()
            return

        def add(_progress, _cancelled) -> Path:
            if Path(path).exists():
                from engine.data.row_store import open_store

                shape = open_store(path)[1]
            else:
                shape = detect_shape(new_columns)
            append_records(path, [build(shape)])
            return Path(path)

        def done(written: Path) -> None:
            self.status.emit(f"Added a row to {written.name}.")
            if added is not None:
                added()

        self.tasks.run(
            add,
            while_alive(self, done),
            while_alive(self, lambda m, h: self.failed.emit(m, h)),
            name="add chat row",
        )

    def export_file(self) -> None:
        from engine.data.row_store import save_store

        document = self.document
        if document is None:
            return
        target = self.choose_export_file(str(Path.home() / f"{document.path.stem}.jsonl"))
        if not target:
            return
        snapshot, _ops = document.snapshot()
        task = Task(
            lambda progress, cancelled: save_store(snapshot, Path(target), progress, cancelled), "export"
        )
        task.progress.connect(self.toolbar.show_progress)
        task.finished.connect(
            while_alive(
                self,
                lambda _r: (
                    self.toolbar.show_progress(0, 0, ""),
                    self.status.emit(f"Exported {len(snapshot)} rows to {target}."),
                ),
            )
        )
        task.failed.connect(
            while_alive(self, lambda m, h: (self.toolbar.show_progress(0, 0, ""), self.failed.emit(m, h)))
        )
        self.tasks.start(task)
