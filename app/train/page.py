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
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.infra.tasks import TaskRunner
from app.train.run_manager import RunManager
from app.train.setup import RunSetup
from app.widgets.run_labels import run_details

NEW_RUN = "＋  New run"


class TrainPage(QWidget):
    openLibrary = Signal()
    failed = Signal(str, str)  # message, hint
    _plotsImported = Signal()

    def __init__(self, manager: RunManager, tasks: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = "Train"
        self.manager = manager
        self.tasks = tasks
        self.project = None
        self.before_start = None
        """Called with the training data file before a run starts; False keeps it from starting."""
        self.runs_list = QListWidget(self)
        self.runs_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.runs_list.setToolTip("Select several runs (Ctrl/Shift) and press Compare to overlay their curves.")
        self.compare_button = QPushButton("Compare…", self)
        self.compare_button.setToolTip("Overlay the loss curves of the selected runs and list their setting differences.")
        self.empty = QLabel("No project selected. Pick one on the left, or create one with File → New project.", self)
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

        left = QWidget(self)
        column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(QLabel("<b>Runs</b>", left))
        column.addWidget(self.runs_list, 1)
        column.addWidget(self.compare_button)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(left)
        split.addWidget(self.stack)
        split.setStretchFactor(1, 1)
        split.setSizes([230, 900])
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(split)

        self.runs_list.currentItemChanged.connect(self._on_current_changed)
        self.runs_list.itemSelectionChanged.connect(self._update_compare)
        self.compare_button.clicked.connect(self.compare_selected)
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

            self._monitor = RunMonitor(self)
            self.stack.addWidget(self._monitor)
            self._monitor.stopRequested.connect(self.manager.stop)
            self._monitor.resumeRequested.connect(
                lambda run, step: self._launch(self.manager.resume, run, step=step))
            self._monitor.trainFurtherRequested.connect(
                lambda run, steps: self._launch(self.manager.resume, run, max_steps=steps))
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
            item = QListWidgetItem(f"{run.name}\n{'running' if active else run_details(run)}")
            item.setData(Qt.ItemDataRole.UserRole, str(run.path))
            item.setToolTip(str(run.path))
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
        run_dir = Path(item.data(Qt.ItemDataRole.UserRole)) if item and item.data(Qt.ItemDataRole.UserRole) else None
        summary = self.runs().get(run_dir) if run_dir else None
        if summary is None:
            self.stack.setCurrentWidget(self.setup)
            return
        if self._monitor is None and not self._plots_imported:
            self._pending_run = summary.path  # shown when the plots are imported
            self.stack.setCurrentWidget(self.loading)
            return
        self.monitor.show_run(summary, self.manager.is_active(summary.path))
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

    # ---- launching ---------------------------------------------------------------------------
    def _on_start_requested(self, config) -> None:
        """Save the settings into the project, then train them into a new run folder."""
        from engine.workspace import save_project_config

        project = self.project.path
        if self.before_start is not None and not self.before_start(Path(config.data.path or "")):
            return

        def save(_progress, _cancelled):
            save_project_config(project, config)
            return project

        self.setup.start_button.setEnabled(False)
        self.tasks.run(save, lambda path: self._launch(self.manager.start_new, path),
                       lambda message, hint: self.failed.emit(message, hint), name="save settings")

    def _launch(self, start, *args, **kwargs) -> None:
        try:
            start(*args, **kwargs)
        except OSError as exc:
            self.failed.emit(f"The engine could not be started: {exc}.", "Check that the project folder is writable.")
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
        if all(self.runs_list.item(i).data(Qt.ItemDataRole.UserRole) != str(run_dir)
               for i in range(self.runs_list.count())):
            item = QListWidgetItem(f"{summary.name}\nrunning")
            item.setData(Qt.ItemDataRole.UserRole, str(run_dir))
            self.runs_list.insertItem(1, item)
        self.runs_list.blockSignals(True)
        self.runs_list.setCurrentRow(next(i for i in range(self.runs_list.count())
                                          if self.runs_list.item(i).data(Qt.ItemDataRole.UserRole) == str(run_dir)))
        self.runs_list.blockSignals(False)
        self.monitor.show_run(summary, True)
        self.monitor.set_state("starting")
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

    def shutdown(self) -> None:
        if self._monitor is not None:
            self._monitor.shutdown()
        self.setup.shutdown()
