"""Models → Model library: the demo model, the local Hugging Face cache and folders the
user adds or converts from GGUF, with what each needs (memory, chat template, consent).

Scans run on the thread pool; GGUF conversion runs `whetstone-engine models import-gguf`
as a child process (it imports torch and takes a while), with progress and cancel.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QSortFilterProxyModel, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.infra.engine_process import EngineProcess
from app.infra.tasks import Task, TaskRunner
from app.library.table_model import SORT_ROLE, LibraryTableModel
from engine.cli.protocol import EXIT_DONE, error_message, stopped_on_request


def ask_remote_code_consent(parent: QWidget, info) -> bool:
    """The explicit consent gate for models that ship their own Python code."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Allow this model's own code?")
    box.setText(
        f"<b>{html.escape(info.name)}</b> needs Python code shipped inside its folder "
        f"(model type {html.escape(str(info.model_type))!s} is not built into transformers)."
    )
    box.setInformativeText(
        "Loading it runs that code with your user's rights: it can read and change your files. "
        "Allow it only if you trust where this folder came from.\n\n" + str(info.path)
    )
    allow = box.addButton("Allow its code", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is allow


class ModelLibraryDialog(QDialog):
    modelChosen = Signal(object)  # ModelInfo the user picked for the current project
    changed = Signal()  # the library's list changed (scan finished)

    def __init__(
        self, library, tasks: TaskRunner, can_choose: bool = True, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model library")
        self.resize(1000, 460)
        self.library = library
        self._tasks = tasks
        self._scan: Task | None = None
        self._import: EngineProcess | None = None
        self._select_after_scan: str | None = None
        self._can_choose = can_choose  # "Use for this project" needs a current project
        self.scans = 0

        self.table_model = LibraryTableModel(self)
        proxy = QSortFilterProxyModel(self)
        proxy.setSourceModel(self.table_model)
        proxy.setSortRole(SORT_ROLE)
        self.table = QTableView(self)
        self.table.setModel(proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # keep the library's order (demo first)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self._update_buttons())
        self.table.doubleClicked.connect(lambda *_: self._on_use())
        self._proxy = proxy

        self.details = QLabel(self)
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar(self)
        self.progress.setMaximumWidth(240)
        self.progress.hide()
        self.progress_label = QLabel(self)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self._on_cancel)

        self.add_button = QPushButton("Add folder…", self)
        self.gguf_button = QPushButton("Import GGUF…", self)
        self.consent_button = QPushButton("Allow its code…", self)
        self.remove_button = QPushButton("Remove from list", self)
        self.rescan_button = QPushButton("Rescan", self)
        self.use_button = QPushButton("Use for this project", self)
        self.use_button.setVisible(can_choose)
        self.use_button.setDefault(True)
        for button, slot in (
            (self.add_button, self.choose_folder_to_add),
            (self.gguf_button, self.choose_gguf_to_import),
            (self.consent_button, self._on_consent),
            (self.remove_button, self._on_remove),
            (self.rescan_button, self.rescan),
            (self.use_button, self._on_use),
        ):
            button.clicked.connect(slot)
        close = QPushButton("Close", self)
        close.clicked.connect(self.reject)

        top = QHBoxLayout()
        for button in (
            self.add_button,
            self.gguf_button,
            self.consent_button,
            self.remove_button,
            self.rescan_button,
        ):
            top.addWidget(button)
        top.addStretch(1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.progress)
        bottom.addWidget(self.progress_label, 1)
        bottom.addWidget(self.cancel_button)
        bottom.addWidget(self.use_button)
        bottom.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.details)
        layout.addLayout(bottom)
        self._update_buttons()
        self.rescan()

    # ---- state ---------------------------------------------------------------------------
    def current(self):
        index = self.table.currentIndex()
        if not index.isValid():
            return None
        return self.table_model.info(self._proxy.mapToSource(index).row())

    def select_path(self, path) -> bool:
        row = self.table_model.row_of(Path(path).resolve())
        if row < 0:
            row = self.table_model.row_of(path)
        if row < 0:
            return False
        self.table.selectRow(self._proxy.mapFromSource(self.table_model.index(row, 0)).row())
        return True

    def is_busy(self) -> bool:
        return self._scan is not None or (self._import is not None and self._import.is_running())

    def _busy(self, text: str, done: int = 0, total: int = 0) -> None:
        self.progress.setVisible(bool(text))
        self.cancel_button.setVisible(bool(text))
        self.progress_label.setText(text)
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self._update_buttons()

    def _update_buttons(self) -> None:
        info = self.current()
        busy = self.is_busy()
        self.add_button.setEnabled(not busy)
        self.gguf_button.setEnabled(not busy)
        self.rescan_button.setEnabled(not busy)
        self.consent_button.setEnabled(
            bool(info and info.needs_remote_code and not info.remote_code_allowed and not info.problem)
        )
        self.remove_button.setEnabled(bool(info and info.source == "added") and not busy)
        self.use_button.setEnabled(bool(info and info.usable) and self._can_choose)
        self.details.setText(self._describe(info))

    @staticmethod
    def _describe(info) -> str:
        if info is None:
            return "Pick a model to see where it lives and what it needs."
        text = f"<b>{html.escape(info.name)}</b> — {html.escape(str(info.path))}"
        if info.problem:
            text += (
                f"<br><span style='color:#c0392b'>{html.escape(info.problem)}</span> {html.escape(info.hint)}"
            )
        elif info.needs_remote_code and not info.remote_code_allowed:
            text += "<br>This model runs its own Python code; it is disabled until you allow that."
        elif not info.has_chat_template:
            text += "<br>No chat template: fine for plain-text training; chat data needs a template."
        return text

    # ---- scanning ------------------------------------------------------------------------
    def rescan(self) -> None:
        if self._scan is not None:
            return

        def scan(progress, cancelled):
            return self.library.scan(progress=progress, cancel=cancelled)

        self._scan = Task(scan, "scan models")
        self._scan.progress.connect(lambda d, t, name: self._busy(f"Looking at {name}…", d, t))
        self._scan.finished.connect(self._on_scanned)
        self._scan.failed.connect(self._on_scan_failed)
        self._scan.was_cancelled.connect(self._on_scan_cancelled)
        self._busy("Looking for models…")
        self._tasks.start(self._scan)

    def _on_scanned(self, models: list) -> None:
        current = self.current()
        self._scan = None
        self.scans += 1
        self.table_model.set_models(models)
        target = self._select_after_scan or (str(current.path) if current else None)
        self._select_after_scan = None
        if not (target and self.select_path(target)) and models:
            self.table.selectRow(0)
        self._busy("")
        self.progress_label.setText(f"{len(models)} model{'s' if len(models) != 1 else ''}.")
        self.changed.emit()

    def _on_scan_failed(self, message: str, hint: str) -> None:
        self._scan = None
        self._busy("")
        self.progress_label.setText(f"Scan failed: {message} {hint}")

    def _on_scan_cancelled(self) -> None:
        self._scan = None
        self._busy("")
        self.progress_label.setText("Scan cancelled; the list may be incomplete.")

    def _on_cancel(self) -> None:
        if self._scan is not None:
            self._scan.cancel()
        if self._import is not None:
            self._import.kill()

    def shutdown(self) -> None:
        """The app is closing: stop a conversion now (it removes its staging folder on SIGTERM)."""
        if self._scan is not None:
            self._scan.cancel()
        if self._import is not None:
            self._import.stop_now()

    # ---- adding --------------------------------------------------------------------------
    def set_can_choose(self, can: bool) -> None:
        """Whether "Use for this project" applies (a project is selected in the window)."""
        self._can_choose = can
        self._update_buttons()

    def choose_folder_to_add(self) -> None:
        # From the home folder, not the folder the app was started in (an installed app's is meaningless).
        folder = QFileDialog.getExistingDirectory(
            self, "Add a model folder (the one with config.json)", str(Path.home())
        )
        if folder:
            self.add_folder(folder)

    def add_folder(self, folder: str | Path) -> None:
        """Check a folder off the UI thread; a bad one is refused with the reason."""
        self._busy(f"Checking {Path(folder).name}…")

        def done(info) -> None:
            self._busy("")
            if info.needs_remote_code and not info.remote_code_allowed:
                self.ask_consent(info)
            self._select_after_scan = str(info.path)
            self.rescan()

        def failed(message: str, hint: str) -> None:
            self._busy("")
            self.progress_label.setText("Not added.")
            QMessageBox.warning(self, "This folder cannot be used", f"{message}\n\n{hint}".strip())

        self._tasks.run(lambda _p, _c: self.library.add_folder(folder), done, failed, name="add model")

    def _on_consent(self) -> None:
        info = self.current()
        if info is not None:
            self.ask_consent(info)
            self._select_after_scan = str(info.path)
            self.rescan()

    def ask_consent(self, info) -> bool:
        allowed = ask_remote_code_consent(self, info)
        if allowed:
            self.library.set_remote_code_allowed(info.path, True)
        return allowed

    def _on_remove(self) -> None:
        info = self.current()
        if info is not None and info.source == "added":
            self.library.remove(info.path)
            self.rescan()

    def choose_gguf_to_import(self) -> None:
        file, _ = QFileDialog.getOpenFileName(
            self, "Import a GGUF model", str(Path.home()), "GGUF models (*.gguf);;All files (*)"
        )
        if file:
            self.import_gguf(file)

    def import_gguf(self, file: str | Path, name: str | None = None) -> EngineProcess:
        """Convert a .gguf into a model folder in a child process
        (cancel kills it; nothing half-made stays)."""
        args = ["models", "import-gguf", str(file), "--progress-json"] + (["--name", name] if name else [])
        self._import = EngineProcess(args, self)
        self._import.message.connect(self._on_import_message)
        self._import.ended.connect(self._on_import_ended)
        self._busy(f"Converting {Path(file).name}…", 0, 100)
        self._import.start()
        return self._import

    def _on_import_message(self, message: dict) -> None:
        if "progress" in message:
            self._busy(str(message.get("message", "Converting…")), int(float(message["progress"]) * 100), 100)
        if "done" in message:
            self._select_after_scan = str(message["done"])

    def _on_import_ended(self, code: int, line: str) -> None:
        self._import = None
        self._busy("")
        if code == EXIT_DONE:
            self.progress_label.setText("Converted.")
            self.rescan()
        elif stopped_on_request(code, line):  # killed, or stopped on request
            self.progress_label.setText("Conversion cancelled; nothing was kept.")
        else:
            self.progress_label.setText("Conversion failed.")
            QMessageBox.warning(self, "The GGUF file cannot be imported", error_message(line))

    # ---- choosing ------------------------------------------------------------------------
    def _on_use(self) -> None:
        info = self.current()
        if info is not None and info.usable:
            self.modelChosen.emit(info)

    def done(self, result: int) -> None:  # closing while busy cancels the work
        self._on_cancel()
        super().done(result)
