"""The Train tab: the project's runs on the left; on the right, a new run's setup or a run's monitor.

Launching, stopping and re-attaching go through the RunManager; the folder is the truth,
so the runs list is rebuilt from the workspace scan whenever a run folder changes.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.infra.tasks import TaskRunner
from app.train.next_steps import RunNextSteps
from app.train.run_manager import RunManager, new_run_name
from app.train.setup import RunSetup
from app.widgets.run_labels import run_details, run_result, run_title

NEW_RUN = "+  New run"  # ASCII: the full-width plus is missing from common fonts (a box under Xvfb)


class StartRequest:
    """What the Train tab is about to train; a listener of `aboutToStart` may refuse it."""

    def __init__(self, data_path: Path) -> None:
        self.data_path = data_path
        self.refused = False

    def refuse(self) -> None:
        self.refused = True


class TrainPage(QWidget):
    openLibrary = Signal()
    failed = Signal(str, str)  # message, hint
    chatRequested = Signal(Path)  # a run to chat with, against the base model
    exportRequested = Signal(Path)  # a run to export
    evaluateRequested = Signal(Path)  # a run to score against the base model (the Evaluate tab)
    runRenamed = Signal(Path)  # its display name changed: lists elsewhere show it after a rescan
    # A StartRequest, emitted just before a run starts; any slot may refuse it (like a QCloseEvent).
    aboutToStart = Signal(object)
    _plotsImported = Signal()

    def __init__(self, manager: RunManager, tasks: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = "Train"
        self.manager = manager
        self.tasks = tasks
        self.project = None
        self.runs_list = QListWidget(self)
        self.runs_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.runs_list.setToolTip(
            "Select several runs (Ctrl/Shift) and press Compare to overlay their curves."
        )
        self.runs_list.setWordWrap(True)  # long run names wrap instead of hiding behind a scroll bar
        self.runs_list.setMinimumWidth(self.fontMetrics().horizontalAdvance("Quick test · lr 3e-4 ·"))
        self.compare_button = QPushButton("Compare…", self)
        self.compare_button.setToolTip(
            "Overlay the loss curves of the selected runs and list their setting differences."
        )
        self.empty = QLabel(
            "No project selected. Pick one on the left, or create one with File → New project.", self
        )
        self.empty.setWordWrap(True)
        self.setup = RunSetup(tasks, self)
        self.loading = QLabel("Loading the plots…", self)
        self.loading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._monitor = None  # built on first use: pyqtgraph takes ~0.8 s to import (see prewarm)
        self._plots_imported = False
        self._pending_run: Path | None = None
        self.stack = QStackedWidget(self)
        for widget in (self.empty, self.setup, self.loading):
            self.stack.addWidget(widget)
        self.next_steps = RunNextSteps(self)
        right = QWidget(self)
        right_column = QVBoxLayout(right)
        right_column.setContentsMargins(0, 0, 0, 0)
        right_column.addWidget(self.next_steps)
        right_column.addWidget(self.stack, 1)

        left = QWidget(self)
        column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(QLabel("<b>Runs</b>", left))
        column.addWidget(self.runs_list, 1)
        column.addWidget(self.compare_button)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([230, 900])
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(split)

        self.runs_list.currentItemChanged.connect(self._on_current_changed)
        self.runs_list.itemSelectionChanged.connect(self._update_compare)
        self.compare_button.clicked.connect(self.compare_selected)
        self.runs_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.runs_list.customContextMenuRequested.connect(self._on_runs_menu)
        self.next_steps.chatRequested.connect(self.chatRequested)
        self.next_steps.exportRequested.connect(self.exportRequested)
        self.next_steps.add_step(
            "Evaluate",
            "Score this run against the base model: the project's eval sets, validation loss, "
            "and what it forgot (the Evaluate tab)",
            self.evaluateRequested.emit,
        )
        self.setup.startRequested.connect(self._on_start_requested)
        self.setup.openLibrary.connect(self.openLibrary)
        self._plotsImported.connect(self._on_plots_imported)
        self.manager.started.connect(self._on_run_started)
        self.manager.finished.connect(self._on_run_finished)
        self.show_project(None)

    # ---- the monitor, built lazily ------------------------------------------------------------
    def prewarm(self) -> None:
        """Import the plotting code on a worker thread after the first paint, so neither the
        window's appearance nor the first run shown waits for pyqtgraph on the UI thread."""

        def load() -> None:
            import app.train.monitor  # noqa: F401

            self._plotsImported.emit()

        threading.Thread(target=load, name="import plots", daemon=True).start()

    @property
    def monitor(self):
        if self._monitor is None:
            from app.train.monitor import RunMonitor

            self._monitor = RunMonitor(self.manager, self)
            self.stack.addWidget(self._monitor)
            self._monitor.stopRequested.connect(self.manager.stop)
            self._monitor.resumeRequested.connect(
                lambda run, step: self._launch(self.manager.resume, run, step=step)
            )
            self._monitor.trainFurtherRequested.connect(
                lambda run, steps: self._launch(self.manager.resume, run, max_steps=steps)
            )
        return self._monitor

    def _on_plots_imported(self) -> None:
        self._plots_imported = True
        pending, self._pending_run = self._pending_run, None
        if pending is not None and self.current_run() == pending:
            self._on_current_changed(self.runs_list.currentItem())

    def _shows(self, run_dir) -> bool:
        return self._monitor is not None and self._monitor.run_dir == Path(run_dir)

    # ---- project and runs -------------------------------------------------------------------
    def show_project(self, project) -> None:
        changed = (project.path if project else None) != (self.project.path if self.project else None)
        self.project = project
        self.setup.show_project(project)
        if project is None or project.problem:
            self.runs_list.clear()
            self.stack.setCurrentWidget(self.empty)
            return
        selected = self.current_run() if not changed else None
        self.runs_list.blockSignals(True)
        self.runs_list.clear()
        self.runs_list.addItem(QListWidgetItem(NEW_RUN))
        for run in project.runs:
            active = self.manager.is_active(run.path)
            item = QListWidgetItem(f"{run_title(run)}\n{'running' if active else run_details(run)}")
            item.setData(Qt.ItemDataRole.UserRole, str(run.path))
            item.setToolTip(f"{run.path}\nRight-click to rename, chat with or export it.")
            self.runs_list.addItem(item)
        self.runs_list.blockSignals(False)
        if changed and project.runs:
            selected = project.runs[0].path  # the newest run
        self.select_run(selected)
        self._update_compare()

    def runs(self) -> dict[Path, object]:
        return {run.path: run for run in (self.project.runs if self.project else ())}

    def current_run(self) -> Path | None:
        item = self.runs_list.currentItem()
        value = item.data(Qt.ItemDataRole.UserRole) if item else None
        return Path(value) if value else None

    def select_run(self, run_dir: Path | None) -> None:
        """Show a run's monitor, or the new-run setup for None."""
        for i in range(self.runs_list.count()):
            value = self.runs_list.item(i).data(Qt.ItemDataRole.UserRole)
            if (Path(value) if value else None) == (Path(run_dir) if run_dir else None):
                self.runs_list.setCurrentRow(i)
                self._on_current_changed(self.runs_list.item(i))
                return
        self.runs_list.setCurrentRow(0)
        self._on_current_changed(self.runs_list.item(0))

    def _on_current_changed(self, item, _previous=None) -> None:
        run_dir = (
            Path(item.data(Qt.ItemDataRole.UserRole))
            if item and item.data(Qt.ItemDataRole.UserRole)
            else None
        )
        summary = self.runs().get(run_dir) if run_dir else None
        active = summary is not None and self.manager.is_active(summary.path)
        self.next_steps.show_for(
            run_dir,
            "running" if active else getattr(summary, "state", "new"),
            summary is not None and bool(summary.adapter or summary.checkpoints),
        )
        if summary is None:
            self.stack.setCurrentWidget(self.setup)
            return
        if self._monitor is None and not self._plots_imported:
            self._pending_run = summary.path  # shown when the plots are imported
            self.stack.setCurrentWidget(self.loading)
            return
        self.monitor.show_run(summary, active)
        self.monitor.title.setText(run_title(summary))  # the display name, also after a rename
        self.stack.setCurrentWidget(self.monitor)

    def _update_compare(self) -> None:
        self.compare_button.setEnabled(len(self.selected_runs()) >= 2)

    def selected_runs(self) -> list[Path]:
        values = [i.data(Qt.ItemDataRole.UserRole) for i in self.runs_list.selectedItems()]
        return [Path(v) for v in values if v]

    def compare_selected(self):
        from app.train.compare import CompareRunsDialog

        runs = self.selected_runs()
        if len(runs) < 2:
            return None
        dialog = CompareRunsDialog(runs, self.tasks, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    # ---- one run's actions: rename, chat, export ------------------------------------------------
    def run_menu(self, run_dir: Path) -> QMenu:
        """The runs list's context menu for one run (built apart from showing it, for tests)."""
        summary = self.runs().get(Path(run_dir))
        has_result = not self.manager.is_active(Path(run_dir)) and run_result(summary) is not None
        menu = QMenu(self)
        menu.addAction("Rename…", lambda: self.rename_run(run_dir))
        chat = menu.addAction("Chat with it", lambda: self.chatRequested.emit(Path(run_dir)))
        export = menu.addAction("Export…", lambda: self.exportRequested.emit(Path(run_dir)))
        evaluate = menu.addAction("Evaluate", lambda: self.evaluateRequested.emit(Path(run_dir)))
        for action in (chat, export, evaluate):
            action.setEnabled(has_result)
        return menu

    def _on_runs_menu(self, pos) -> None:
        item = self.runs_list.itemAt(pos)
        value = item.data(Qt.ItemDataRole.UserRole) if item else None
        if value:
            self.run_menu(Path(value)).exec(self.runs_list.viewport().mapToGlobal(pos))

    def ask_text(self, title: str, label: str, text: str = "") -> str | None:
        """A one-line question (tests replace it)."""
        value, ok = QInputDialog.getText(self, title, label, QLineEdit.EchoMode.Normal, text)
        return value if ok else None

    def rename_run(self, run_dir: Path) -> None:
        """Ask for a new display name; the folder keeps its name (paths inside the run stay valid)."""
        from engine.errors import UserError
        from engine.runs.names import write_run_name

        run_dir = Path(run_dir)
        name = self.ask_text(
            "Rename run", f"Name of the run (its folder stays {run_dir.name}):", run_title(run_dir)
        )
        if name is None or name.strip() == run_title(run_dir):
            return
        try:
            name = write_run_name(run_dir, name)
        except UserError as exc:
            self.failed.emit(exc.message, exc.hint)
            return
        for i in range(self.runs_list.count()):
            item = self.runs_list.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == str(run_dir):
                item.setText(f"{name}\n{item.text().split(chr(10), 1)[-1]}")
        if self._shows(run_dir):
            self.monitor.title.setText(name)
        self.runRenamed.emit(run_dir)

    # ---- launching ---------------------------------------------------------------------------
    def _on_start_requested(self, config) -> None:
        """Save the settings into the project, then train them into a new run folder."""
        from engine.runs.names import write_run_name
        from engine.workspace import save_project_config

        project = self.project.path
        request = StartRequest(Path(config.data.path or ""))
        self.aboutToStart.emit(request)  # e.g. the Data tab asks about unsaved edits of that file
        if request.refused:
            return
        name = self.setup.chosen_run_name()

        def save(_progress, _cancelled):
            save_project_config(project, config)
            folder = new_run_name(project)
            write_run_name(project / "runs" / folder, name)  # before the engine starts: lists show it at once
            return folder

        def saved(folder: str) -> None:
            self.setup.run_started()
            self._launch(self.manager.start_new, project, folder)

        self.setup.start_button.setEnabled(False)
        self.tasks.run(
            save, saved, lambda message, hint: self.failed.emit(message, hint), name="save settings"
        )

    def _launch(self, start, *args, **kwargs) -> None:
        try:
            start(*args, **kwargs)
        except OSError as exc:
            self.failed.emit(
                f"The engine could not be started: {exc}.", "Check that the project folder is writable."
            )
        finally:
            self.setup.start_button.setEnabled(not self.setup.errors)

    def _on_run_started(self, run_dir: Path) -> None:
        if self.project is not None and Path(run_dir).parent.parent == self.project.path:
            self._show_started(Path(run_dir))

    def _show_started(self, run_dir: Path) -> None:
        from engine.runs.state import summarize_run

        try:
            summary = summarize_run(run_dir)
        except FileNotFoundError:
            return
        if all(
            self.runs_list.item(i).data(Qt.ItemDataRole.UserRole) != str(run_dir)
            for i in range(self.runs_list.count())
        ):
            item = QListWidgetItem(f"{run_title(summary)}\nrunning")
            item.setData(Qt.ItemDataRole.UserRole, str(run_dir))
            self.runs_list.insertItem(1, item)
        self.runs_list.blockSignals(True)
        self.runs_list.setCurrentRow(
            next(
                i
                for i in range(self.runs_list.count())
                if self.runs_list.item(i).data(Qt.ItemDataRole.UserRole) == str(run_dir)
            )
        )
        self.runs_list.blockSignals(False)
        self.monitor.show_run(summary, True)
        self.monitor.title.setText(run_title(summary))
        self.monitor.set_state("starting")
        self.next_steps.show_for(run_dir, "running", False)
        self.stack.setCurrentWidget(self.monitor)

    def _on_run_finished(self, run_dir: Path, state: str, message: str) -> None:
        if state == "refused":
            self.failed.emit("The run did not start.", message)
            from engine.runs.state import summarize_run

            if self._shows(run_dir):
                self.monitor.update_summary(summarize_run(run_dir), False)
            return
        if self._shows(run_dir):
            self.monitor.set_state(state, message)
            from engine.runs.state import summarize_run

            try:
                summary = summarize_run(run_dir)
            except FileNotFoundError:
                return
            self.next_steps.show_for(run_dir, state, bool(summary.adapter or summary.checkpoints))

    def shutdown(self) -> None:
        if self._monitor is not None:
            self._monitor.shutdown()
        self.setup.shutdown()
