"""The Data tab: open a project's dataset, find and fix its problems, see what each row trains.

Opening, reviewing, searching, tokenizer loading and saving run on worker threads; the page
only applies their results. Edits go through the DatasetDocument (undo stack + journal).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QMessageBox,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.data.checks import DatasetChecks
from app.data.document import DatasetDocument
from app.data.files import DatasetFiles
from app.data.finder import RowFinder
from app.data.model_context import ModelContext
from app.data.problems_panel import ProblemsPanel
from app.data.row_editor import RowEditor
from app.data.sides_view import preference_sides
from app.data.table_model import DatasetTableModel
from app.data.table_view import DatasetView
from app.data.toolbar import DataToolbar
from app.data.trained_view import TrainedView
from app.infra.tasks import Task, TaskRunner, while_alive
from engine.data.review import review_row
from engine.data.row_store import open_store
from engine.data.shapes import PREFERENCE_SHAPES, blank_record


class DataPage(QWidget):
    """The page assembles its widgets and four collaborators: the base model (folder, tokenizer),
    the checks (review, problems, lengths), the finder (find and filter) and the file actions
    (save, import, export). It keeps the open document and the row editing."""

    failed = Signal(str, str)  # message, hint
    status = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = "Data"
        self.tasks = TaskRunner(self, threads=2)
        self.project = None
        self.document: DatasetDocument | None = None
        self.table_model: DatasetTableModel | None = None
        self._open_task: Task | None = None
        self._format = "auto"  # the project's data format and columns (for its training file only)
        self._columns: dict = {}
        self.base_model = ModelContext(self.tasks, self)

        self.toolbar = DataToolbar(self)
        self.view = DatasetView(self)
        self.editor = RowEditor(self)
        self.trained = TrainedView(self)
        self.trained.show_message("Select a row to see what the model is trained on.")
        self.problems = ProblemsPanel(self)
        self.side = QTabWidget(self)
        self.side.addTab(self.editor, "Row")
        self.side.addTab(self.trained, "What gets trained")
        self.side.currentChanged.connect(
            lambda _i: self.side.currentWidget() is self.trained and self._show_trained()
        )
        self.bottom = QTabWidget(self)
        self.bottom.addTab(self.problems, "Problems")
        self.lengths_tab = QWidget(self)
        QVBoxLayout(self.lengths_tab).setContentsMargins(0, 0, 0, 0)
        self.bottom.addTab(self.lengths_tab, "Token lengths")

        top = QSplitter(Qt.Orientation.Horizontal, self)
        top.addWidget(self.view)
        top.addWidget(self.side)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 2)
        top.setSizes([620, 420])
        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.addWidget(top)
        self.splitter.addWidget(self.bottom)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setSizes([520, 200])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.splitter, 1)

        self.checks = DatasetChecks(
            self.tasks, self.base_model, self.problems, self.bottom, self.lengths_tab, self.toolbar, self
        )
        self.files = DatasetFiles(self.tasks, self.toolbar, self.editor, self)
        self.finder = RowFinder(self.tasks, self.toolbar, self.view, self)
        self.finder.nothing_shown.connect(lambda: self._on_current_row(None))
        self._build_actions()
        self.checks.failed.connect(self.failed)
        self.checks.issues_shown.connect(self._on_issues_shown)
        self.files.failed.connect(self.failed)
        self.files.status.connect(self.status)
        self.files.imported.connect(self._on_dataset_chosen)
        self.base_model.tokenizer_loading.connect(
            lambda: self.trained.show_message("Loading the base model's tokenizer…")
        )
        self.base_model.tokenizer_ready.connect(self._on_tokenizer_ready)
        self.base_model.tokenizer_failed.connect(self.trained.show_message)
        self.toolbar.dataset_chosen.connect(self._on_dataset_chosen)
        self.toolbar.import_clicked.connect(self.files.import_file)
        self.toolbar.export_clicked.connect(self.files.export_file)
        self.view.current_row_changed.connect(self._on_current_row)
        self.editor.edited.connect(self._on_row_edited)
        self.problems.row_chosen.connect(self.select_row)
        self.problems.fix_requested.connect(self._on_fix)
        self._set_document_widgets_enabled(False)

    def _build_actions(self) -> None:
        def action(text: str, slot, shortcut, tip: str) -> QAction:
            act = QAction(text, self)
            act.setShortcut(QKeySequence(shortcut))
            act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            act.setToolTip(f"{tip} ({QKeySequence(shortcut).toString()})")
            act.triggered.connect(lambda _c=False: slot())
            self.addAction(act)
            return act

        self.save_action = action("Save", self.files.save, QKeySequence.StandardKey.Save, "Save the dataset")
        self.add_action = action(
            "Add row", self.add_row, "Ctrl+Shift+N", "Add an empty row after the selected one"
        )
        self.duplicate_action = action(
            "Duplicate", self.duplicate_rows, "Ctrl+Shift+D", "Duplicate the selected rows"
        )
        self.delete_action = action(
            "Delete", self.delete_rows, QKeySequence.StandardKey.Delete, "Delete the selected rows"
        )
        self.toolbar.set_actions(
            [self.save_action, self.add_action, self.duplicate_action, self.delete_action]
        )
        self.addActions([self.toolbar.undo_action, self.toolbar.redo_action])

    # ---- dialogs (tests replace these) ----------------------------------------------------------
    def ask_recover(self, name: str, what: str) -> bool:
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Recover unsaved edits",
            f"{name} has {what} from a session that ended without saving.\n\n"
            "Recover them, or discard them and open the file as it was last saved?",
            QMessageBox.StandardButton.Discard,
            self,
        )
        recover = box.addButton("Recover", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(recover)
        box.exec()
        return box.clickedButton() is recover

    def ask_unsaved(self, name: str, can_cancel: bool) -> str:
        buttons = QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
        if can_cancel:
            buttons |= QMessageBox.StandardButton.Cancel
        box = QMessageBox(
            QMessageBox.Icon.Warning, "Unsaved edits", f"{name} has unsaved edits.", buttons, self
        )
        if not can_cancel:
            later = box.addButton("Keep for later", QMessageBox.ButtonRole.RejectRole)
            box.setInformativeText(
                "Keep for later: the edits stay in the autosave journal and are offered "
                "when you open the dataset again."
            )
        box.exec()
        clicked = box.clickedButton()
        if not can_cancel and clicked is later:
            return "later"
        return {QMessageBox.StandardButton.Save: "save", QMessageBox.StandardButton.Discard: "discard"}.get(
            box.standardButton(clicked), "cancel"
        )

    # ---- project and dataset ----------------------------------------------------------------
    def show_project(self, project) -> None:
        same = project is not None and self.project is not None and project.path == self.project.path
        if not same and self.document is not None and not self.close_document(can_cancel=False):
            return
        if self.document is not None and not self.document.path.exists() and not self.document.is_dirty():
            self.close_document()  # deleted outside the app; with unsaved edits, Save writes it back
        self.project = project
        self.files.project = project
        usable = project is not None and not project.problem
        datasets = list(project.datasets) if usable else []
        chosen = self.document.path if self.document is not None else self._default_dataset(project)
        self.toolbar.set_datasets(datasets, chosen)
        self.toolbar.set_project_enabled(usable)
        if usable:
            self._load_project_settings(project)
            if self.document is None and chosen is not None and self.isVisible():
                self.open_dataset(chosen)
        if not usable or (self.document is None and chosen is None):
            self.view.show_message(
                "No dataset yet: import a data file (JSONL, JSON, CSV, Parquet, text) with Import…"
                if usable
                else "No project selected."
            )

    @staticmethod
    def _default_dataset(project) -> Path | None:
        if project is None or project.problem:
            return None
        if project.dataset and Path(project.dataset).exists():
            return Path(project.dataset)
        return project.datasets[0].path if project.datasets else None

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        chosen = self.toolbar.current_dataset()
        if (
            self.document is None
            and self._open_task is None
            and chosen is not None
            and self.project is not None
        ):
            self.open_dataset(chosen)

    def _load_project_settings(self, project) -> None:
        from engine.errors import UserError
        from engine.workspace import load_project_config

        try:
            config = load_project_config(project.path)
        except UserError:
            return
        self.base_model.max_length = config.data.max_length
        self._format, self._columns = config.data.format, dict(config.data.columns or {})
        if self.base_model.set_folder(config.model.path or None) and self.document is not None:
            self.checks.start_review()
            if self.side.currentWidget() is self.trained:
                self.base_model.ensure_tokenizer()

    def set_model_preparing(self, folder: str, preparing: bool) -> None:
        """The app started or ended making a model folder (the demo model): if it is this project's,
        check the rows without it meanwhile, and everything again once it is there."""
        if not self.base_model.set_preparing(folder, preparing) or self.document is None:
            return
        self.checks.start_review()
        if self.side.currentWidget() is self.trained:
            self._show_trained()

    def _on_tokenizer_ready(self) -> None:
        if self.document is not None:
            model = self.base_model
            self.document.tokenizer, self.document.max_length = model.tokenizer, model.max_length
            self._show_trained()

    def open_dataset(self, path: Path) -> None:
        if self._open_task is not None:
            self._open_task.cancel()
        fmt, columns = self._format, self._columns
        if self.project is not None and Path(path) != self._configured_data():
            fmt, columns = "auto", {}  # the project's format settings describe its training file only
        self.toolbar.select_dataset(Path(path))
        self.view.show_message(f"Opening {Path(path).name}…")
        task = Task(lambda _p, _c: open_store(path, fmt, columns), "open dataset")
        task.finished.connect(
            while_alive(self, lambda result, p=Path(path), t=task: self._on_opened(t, p, *result))
        )
        task.failed.connect(while_alive(self, lambda m, h, t=task: self._on_open_failed(t, m, h)))
        self._open_task = self.tasks.start(task)

    def _configured_data(self) -> Path | None:
        return Path(self.project.dataset) if self.project is not None and self.project.dataset else None

    def _on_open_failed(self, task: Task, message: str, hint: str) -> None:
        if task is self._open_task:
            self._open_task = None
            self.view.show_message(f"{message}\n{hint}")

    def _on_opened(self, task: Task, path: Path, store, shape) -> None:
        if task is not self._open_task:
            return
        self._open_task = None
        document = DatasetDocument(path, store, shape, self)
        document.tokenizer, document.max_length = self.base_model.tokenizer, self.base_model.max_length
        try:
            pending = document.pending_edits()
            if pending is not None and self.ask_recover(path.name, pending.describe()):
                document.recover(pending)
            else:
                document.start_journal()
        except OSError as exc:  # the file or project vanished meanwhile, or the folder is read-only
            document.deleteLater()
            self.view.show_message(
                f"{path.name} cannot be edited: {exc.strerror or exc}.\n"
                "Check that the file still exists and that its folder is writable."
            )
            return
        self._attach(document)

    def _attach(self, document: DatasetDocument) -> None:
        self.document = document
        self.table_model = DatasetTableModel(document, self)
        self.view.set_model(self.table_model)
        self.toolbar.set_document(document)
        self.checks.attach(document, self.table_model)
        self.files.document = document
        document.rows_changed.connect(self._on_rows_changed)
        document.structure_changed.connect(self._on_structure_changed)
        document.issues_changed.connect(self.checks.show_issues)
        document.dirty_changed.connect(lambda _d: self.toolbar.update_state())
        document.journal_failed.connect(lambda m: self.failed.emit(m, "Free some disk space, then save."))
        self._set_document_widgets_enabled(True)
        self.finder.attach(document, self.table_model)
        self.finder.apply()
        self.checks.show_issues()
        self.checks.start_review()
        self.view.select_first()

    def _set_document_widgets_enabled(self, enabled: bool) -> None:
        for act in (self.save_action, self.add_action, self.duplicate_action, self.delete_action):
            act.setEnabled(enabled)
        self.editor.setEnabled(enabled)

    def close_document(self, can_cancel: bool = True) -> bool:
        """Ask about unsaved edits; False when the user cancelled.
        Without cancel, "later" keeps the journal."""
        document = self.document
        if document is None:
            return True
        self.editor.commit()
        if document.is_dirty():
            answer = self.ask_unsaved(document.path.name, can_cancel)
            if answer == "cancel":
                return False
            if answer == "save" and not self.files.save(wait=True):
                return False
            if answer == "discard":
                document.discard_changes()
        self.checks.attach(None, None)
        self.finder.attach(None, None)
        document.close()
        self.document = None
        self.files.document = None
        self.table_model = None
        self.view.set_model(None)
        self.editor.set_record(None, "messages")
        self.toolbar.set_document(None)
        self._set_document_widgets_enabled(False)
        return True

    def choose_dataset(self, path: Path) -> None:
        """Open another dataset of the project (asks about unsaved edits first)."""
        self._on_dataset_chosen(path)

    def _on_dataset_chosen(self, path: Path) -> None:
        if self.document is not None and self.document.path == path:
            return
        if not self.close_document():
            self.toolbar.select_dataset(self.document.path)
            return
        self.open_dataset(path)

    # ---- selection and editing -------------------------------------------------------------------
    def select_row(self, row_id: int) -> None:
        """Show a row (from the problems panel): clears a filter that hides it."""
        if self.table_model is None:
            return
        self.finder.reveal(row_id)
        self.view.select_id(row_id)

    def _current_id(self) -> int | None:
        return self.view.current_id()

    def _on_current_row(self, row_id) -> None:
        document = self.document
        if document is None or row_id is None:
            self.editor.set_record(None, document.shape.name if document else "messages")
            self.trained.show_message("Select a row to see what the model is trained on.")
            return
        self.editor.set_record(
            document.store.record(row_id),
            document.shape.name,
            document.shape.columns,
            self._row_label(row_id),
        )
        self._show_trained()

    def _row_label(self, row_id: int) -> str:
        store = self.document.store
        line = store.line_of(row_id)
        return (
            f"Row {store.position(row_id) + 1}"
            + (f" · line {line}" if line else "")
            + (" · edited" if store.is_edited(row_id) else "")
        )

    def _show_trained(self) -> None:
        document, row_id = self.document, self._current_id()
        if document is None or row_id is None:
            return
        model = self.base_model
        if model.tokenizer is None:
            if model.state == "failed":
                return  # its message stays
            if model.waiting():
                self.trained.show_message(
                    "Preparing the demo model (once, about a minute)… What each row "
                    "trains shows here when it is ready."
                )
                return
            if self.side.currentWidget() is self.trained:
                model.ensure_tokenizer()
            self.trained.show_message(
                "Loading the base model's tokenizer…"
                if model.folder
                else "Choose a base model for this project (Train tab or Model library) "
                "to see what each row trains."
            )
            return
        if document.shape.name in PREFERENCE_SHAPES:  # each side as the preference trainers see it
            record = document.store.peek(row_id)
            sides = preference_sides(record, document.shape, model.tokenizer, model.max_length)
            if isinstance(sides, str):
                self.trained.show_message(sides)
            else:
                self.trained.show_sides(sides, model.max_length)
            return
        issues, rendered = review_row(
            document.store.peek(row_id), document.shape, model.tokenizer, model.max_length
        )
        if rendered is None or isinstance(rendered, ValueError):
            reason = issues[0].message if issues else "it cannot be rendered"
            self.trained.show_message(f"This row is not trained: {reason}.")
        else:
            self.trained.show_rendered(rendered, model.max_length)

    def _on_row_edited(self, record: dict) -> None:
        row_id = self._current_id()
        if self.document is None or row_id is None:
            return
        self.document.set_records(
            [row_id], [record], f"Edit row {self.document.store.position(row_id) + 1}", typing=True
        )

    def _selected_ids(self) -> list[int]:
        return self.view.selected_ids()

    def add_row(self) -> None:
        if self.document is None:
            return
        current = self._current_id()
        position = (
            self.document.store.position(current) + 1 if current is not None else len(self.document.store)
        )
        self.document.insert_records([position], [blank_record(self.document.shape)], "Add row")
        self.view.select_id(int(self.document.store.order[position]))
        self.side.setCurrentWidget(self.editor)

    def duplicate_rows(self) -> None:
        ids = self._selected_ids()
        if self.document is None or not ids:
            return
        store = self.document.store
        ids.sort(key=store.position)
        # Each copy goes right after its original; positions count the copies inserted before it.
        positions = [store.position(i) + 1 + k for k, i in enumerate(ids)]
        self.document.insert_records(
            positions,
            [store.record(i) for i in ids],
            f"Duplicate {len(ids)} row{'s' if len(ids) > 1 else ''}",
        )

    def delete_rows(self) -> None:
        ids = self._selected_ids()
        if self.document is None or not ids:
            return
        after = self.view.id_after(ids)
        self.document.delete_rows(ids, f"Delete {len(ids)} row{'s' if len(ids) > 1 else ''}")
        if after is not None:
            self.view.select_id(after)

    def _on_fix(self, kinds: list) -> None:
        if self.document is not None:
            fixed = self.document.apply_fix(kinds)
            self.status.emit(f"Fixed {fixed} row{'s' if fixed != 1 else ''}. Undo (Ctrl+Z) takes it back.")

    def _token_checks_pending(self) -> None:
        """Without the tokenizer here, edited rows get their token checks from a background review."""
        if self.base_model.tokenizer is None and self.base_model.folder and self.document is not None:
            self.document.review_stale = True

    def _on_rows_changed(self, ids: list) -> None:
        self._token_checks_pending()
        if self.table_model is not None:
            self.table_model.refresh_rows(ids)
        current = self._current_id()
        if current in ids and self.editor.record() != self.document.store.peek(current):
            # Undo, redo or a fix changed the row on screen (typing in the editor already shows it).
            self.editor.set_record(
                self.document.store.record(current),
                self.document.shape.name,
                self.document.shape.columns,
                self._row_label(current),
            )
            self._show_trained()
        self.toolbar.update_state()
        self.checks.review_if_stale()

    def _on_structure_changed(self) -> None:
        self._token_checks_pending()
        current = self._current_id()
        self.finder.apply(keep=current)
        self.toolbar.update_state()
        self.checks.show_issues()
        self.checks.review_if_stale()

    def _on_issues_shown(self) -> None:
        if self.finder.filter.problem:
            self.finder.apply(keep=self._current_id())

    # ---- for the shell ---------------------------------------------------------------------------------
    def reviewing(self) -> bool:
        return self.checks.reviewing()

    def ready_for_training(self, data_path: Path) -> bool:
        """Before a run starts on `data_path`: offer to save unsaved edits of that file."""
        return self.files.ready_for_training(data_path)

    def add_chat_row(self, path: Path, messages: list[dict]) -> None:
        """A chat becomes a row at the end of a dataset (undoable when that dataset is open here)."""
        self.files.add_chat_row(path, messages)

    def add_record(self, path: Path, build, new_columns: list[str], text: str, added=None) -> None:
        """A preference row picked in the chat: `build(shape)` makes it for the dataset's shape;
        `added()` is called once it is in."""
        self.files.add_record(path, build, new_columns, text, added)

    def shutdown(self) -> None:
        self.checks.cancel()
        if self.document is not None:
            self.document.close()
        self.tasks.wait(3000)
