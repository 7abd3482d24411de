"""The main window: project browser on the left, Data/Train/Chat in the middle, and a
status bar with the compute device and the offline state.

Nothing slow happens here: scans, copies and deletes go to the thread pool, and anything
that imports torch (device probe, demo model conversion) runs as an engine child process.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QSplitter,
    QWidget,
)

from app.chat.page import ChatPage
from app.data.page import DataPage
from app.infra.tasks import EngineProcess, TaskRunner
from app.shell.diagnostics_dialog import DeviceProbe, DiagnosticsDialog
from app.shell.notifications import Notifier
from app.shell.preferences import AppSettings
from app.shell.project_browser import ProjectBrowser
from app.shell.project_pages import ProjectPages
from app.shell.workspace_model import WorkspaceModel
from app.train.page import TrainPage
from app.train.run_manager import RunManager
from app.widgets.theme import apply_theme

PREPARING_DEMO = "Preparing the demo model (once, about a minute)…"


class MainWindow(QMainWindow):
    def __init__(self, settings: AppSettings, workspace_root: Path, workspace_why: str = "",
                 background: bool = True, parent: QWidget | None = None) -> None:
        """`background=False` skips the device probe and demo-model preparation (tests)."""
        super().__init__(parent)
        from engine.workspace import Workspace  # light: no torch

        self.settings = settings
        self.workspace_why = workspace_why
        self.tasks = TaskRunner(self)
        self.workspace_model = WorkspaceModel(Workspace(workspace_root), self.tasks, self)
        self.browser = ProjectBrowser(self.workspace_model, self)
        self.runs = RunManager(self)
        self.notifier = Notifier(self)
        self.train_page = TrainPage(self.runs, self.tasks, self)
        self.data_page = DataPage(self)
        self.chat_page = ChatPage(self)
        self.pages = ProjectPages(self.data_page, self.train_page, self.chat_page, self)
        self.probe = DeviceProbe(self)
        self._background = background
        self._demo_process: EngineProcess | None = None
        self._library_dialog = None
        self.current_project: Path | None = None
        self._opened_one = False
        self._demo_tried = False

        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.browser)
        splitter.addWidget(self.pages)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([380, 800])
        splitter.setChildrenCollapsible(False)
        self.splitter = splitter
        self.setCentralWidget(splitter)
        self.setMinimumSize(860, 540)
        self.resize(1180, 740)

        self._build_status_bar()
        self._build_actions()
        self.browser.projectSelected.connect(self._on_project_selected)
        self.browser.itemActivated.connect(self._on_item_activated)
        self.browser.tree.selectionModel().currentChanged.connect(self._on_item_changed)
        self.workspace_model.changed.connect(self._on_projects_changed)
        self.workspace_model.failed.connect(self._on_failed)
        self.workspace_model.busy.connect(self._on_busy)
        self.probe.ready.connect(self._on_device_report)
        self.train_page.openLibrary.connect(self.open_library)
        self.train_page.failed.connect(self._on_failed)
        self.data_page.failed.connect(self._on_failed)
        self.train_page.before_start = self.data_page.ready_for_training
        self.chat_page.row_sink = self.data_page.add_chat_row
        self.chat_page.failed.connect(self._on_failed)
        self.chat_page.status.connect(lambda text: self.statusBar().showMessage(text, 10000))
        self.data_page.status.connect(lambda text: self.statusBar().showMessage(text, 10000))
        self.runs.finished.connect(self._on_run_finished)
        self.runs.started.connect(lambda _run: self.workspace_model.refresh())
        self._restore_state()
        self._update_title()
        QTimer.singleShot(0, self._start)

    # ---- start-up ------------------------------------------------------------------------
    def _start(self) -> None:
        """After the first paint: first-start demo project, the scan, and background probes."""
        saved = self.settings.current_project

        def opened(demo_path) -> None:
            self.browser.select_project(demo_path or saved or None)
            self.workspace_model.refresh()  # its result calls prepare_demo_model when a project needs it

        self.tasks.run(lambda _p, _c: self.workspace_model.workspace.first_start(), opened,
                       self._on_failed, name="first start")
        self.scan_models()
        self.train_page.prewarm()
        if self._background:
            self.probe.start()

    def prepare_demo_model(self, projects: list) -> None:
        """Convert the demo model from its GGUF file once, in a child process, if a project uses it."""
        from engine.models.demo import demo_model_dir, demo_model_ready

        target = demo_model_dir()
        if self._demo_tried or demo_model_ready(target):
            return  # once per session: a failed conversion is reported once, not on every rescan
        if not any(p.model and Path(p.model) == target for p in projects):
            return  # nobody needs it: no minute of CPU and no 270 MB on disk
        self._demo_tried = True
        self._demo_process = EngineProcess(["demo-model"], self)
        self._demo_process.ended.connect(self._on_demo_model_ready)
        self._on_busy(PREPARING_DEMO)
        self._demo_process.start()

    def _on_demo_model_ready(self, code: int, line: str) -> None:
        self._demo_process = None
        self._on_busy("")
        if code == 0:
            self.statusBar().showMessage("The demo model is ready.", 8000)
            self.workspace_model.refresh()
        elif code not in (-1, 3):  # not a stop we asked for
            self._on_failed("The demo model could not be prepared.", line)

    # ---- building ------------------------------------------------------------------------
    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.busy_bar = QProgressBar(self)
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setMaximumWidth(120)
        self.busy_bar.hide()
        self.busy_label = QLabel(self)
        self.device_label = QLabel("Detecting compute device…" if self._background else "Compute device not probed", self)
        self.device_label.setToolTip("Help → Diagnostics shows versions, GPUs and the bitsandbytes backend.")
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        self.offline_label = QLabel("● Offline: no network use" if offline else "Network allowed", self)
        self.offline_label.setToolTip("Whetstone never downloads models or data; everything comes from local folders.")
        bar.addWidget(self.busy_bar)
        bar.addWidget(self.busy_label)
        bar.addPermanentWidget(self.device_label)
        bar.addPermanentWidget(self.offline_label)

    def _action(self, text: str, slot, shortcut=None, menu=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        if menu is not None:
            menu.addAction(action)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        self.new_action = self._action("&New project…", self.new_project, QKeySequence.StandardKey.New, file)
        file.addSeparator()
        self._action("Change &workspace folder…", self.change_workspace, None, file)
        self._action("Show workspace in file manager", lambda: self.reveal(self.workspace_model.workspace.root), None, file)
        file.addSeparator()
        self._action("&Quit", self.close, QKeySequence.StandardKey.Quit, file)

        project = bar.addMenu("&Project")
        self.rename_action = self._action("&Rename…", self.rename_project, "F2", project)
        self.duplicate_action = self._action("&Duplicate…", self.duplicate_project, "Ctrl+D", project)
        self.delete_action = self._action("De&lete…", self.delete_project, QKeySequence.StandardKey.Delete, project)
        # Del deletes a project only from the project browser: in the Data tab it deletes rows.
        self.removeAction(self.delete_action)
        self.browser.addAction(self.delete_action)
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.export_action = self._action("E&xport run…", self.export_current, "Ctrl+E", project,
                                          "Write a merged model or a GGUF file (+ Ollama Modelfile) and check it")
        project.addSeparator()
        self.reveal_action = self._action("Show in file &manager", self.reveal_current, "Ctrl+Shift+R", project)
        self._action("Re&fresh", self.workspace_model.refresh, QKeySequence.StandardKey.Refresh, project)

        models = bar.addMenu("&Models")
        self._action("Model &library…", self.open_library, "Ctrl+L", models)
        self._action("&Add model folder…", lambda: self.open_library().add_button.click(), None, models)
        self._action("&Import GGUF file…", lambda: self.open_library().gguf_button.click(), None, models)

        view = bar.addMenu("&View")
        for i, name in enumerate(("&Data", "&Train", "&Chat")):
            self._action(name, lambda i=i: self.pages.setCurrentIndex(i), f"Ctrl+{i + 1}", view)
        view.addSeparator()
        themes = view.addMenu("T&heme")
        group = QActionGroup(self)
        for key, label in (("system", "Follow the &system"), ("light", "&Light"), ("dark", "&Dark")):
            action = self._action(label, lambda k=key: self.set_theme(k), None, themes)
            action.setCheckable(True)
            action.setChecked(self.settings.theme == key)
            group.addAction(action)

        help_menu = bar.addMenu("&Help")
        self._action("&Diagnostics…", self.show_diagnostics, "Ctrl+Shift+I", help_menu)
        self._action("&About Whetstone", self.show_about, None, help_menu)

        self.browser.set_actions(
            [self.new_action, self.rename_action, self.duplicate_action, self.delete_action, self.reveal_action],
            [self.export_action, self.reveal_action],
        )
        self._update_actions()

    # ---- state ---------------------------------------------------------------------------
    def _restore_state(self) -> None:
        geometry, state, splitter, tab = self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        if splitter is not None:
            self.splitter.restoreState(splitter)
        self.pages.setCurrentIndex(max(0, min(tab, self.pages.count() - 1)))

    def save_state(self) -> None:
        self.settings.save_window_state(self.saveGeometry(), self.saveState(), self.splitter.saveState(),
                                        self.pages.currentIndex())
        self.settings.current_project = str(self.current_project or "")
        self.settings.sync()

    def ask_about_running(self, count: int) -> str:
        """Closing during a run: "stop", "leave" (it goes on; the next start re-attaches) or "cancel"."""
        box = QMessageBox(QMessageBox.Icon.Question, "A run is training",
                          f"{count} run{'s are' if count != 1 else ' is'} still training.\n\n"
                          "Leave it running: training goes on without the window, and Whetstone shows it "
                          "again when you reopen it.\nStop: it saves a checkpoint and ends; you can resume later.",
                          QMessageBox.StandardButton.Cancel, self)
        leave = box.addButton("Leave it running", QMessageBox.ButtonRole.AcceptRole)
        stop = box.addButton("Stop the run", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(leave)
        box.exec()
        return {leave: "leave", stop: "stop"}.get(box.clickedButton(), "cancel")

    def close_leaving_runs(self) -> None:
        """Close without asking (a signal, a logout): runs go on and are re-attached next time."""
        self._leave_runs = True
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self.data_page.close_document():
            event.ignore()
            return
        running = self.runs.active()
        if running and not getattr(self, "_leave_runs", False):
            answer = self.ask_about_running(len(running))
            if answer == "cancel":
                event.ignore()
                return
            if answer == "stop":
                for run_dir in running:
                    self.runs.stop(run_dir)  # the engine checkpoints and exits on its own
        self.runs.shutdown()
        self.train_page.shutdown()
        self.data_page.shutdown()
        self.chat_page.shutdown()
        self.save_state()
        self.probe.stop()
        if self._library_dialog is not None:
            self._library_dialog.shutdown()
        if self._demo_process is not None:
            self._demo_process.stop_now()  # the conversion starts over next time; nothing half-made is kept
        self.tasks.wait(3000)
        super().closeEvent(event)

    def _update_title(self) -> None:
        project = self.workspace_model.project(self.current_project)
        self.setWindowTitle(f"{project.name} — Whetstone" if project else "Whetstone")

    def _update_actions(self) -> None:
        has = self.current_project is not None
        for action in (self.rename_action, self.duplicate_action, self.delete_action):
            action.setEnabled(has)
        self.export_action.setEnabled(self.export_source() is not None)

    # ---- slots ---------------------------------------------------------------------------
    def _on_item_changed(self, *_args) -> None:
        self._update_actions()

    def _on_project_selected(self, path) -> None:
        self.current_project = path
        self.pages.show_project(self.workspace_model.project(path))
        self._update_title()
        self._update_actions()

    def _on_device_report(self, report: dict) -> None:
        self.device_label.setText(self.probe.device_summary())
        self.train_page.setup.set_device_report(report)

    def scan_models(self) -> None:
        """The model library's models for the run setup (a scan reads headers: off the UI thread)."""
        from engine.models.library import ModelLibrary

        library = ModelLibrary(self.workspace_model.workspace.root)
        self.tasks.run(lambda _p, cancelled: library.scan(cancel=cancelled), self.train_page.setup.set_models,
                       name="model scan")

    def _on_run_finished(self, run_dir: Path, state: str, message: str) -> None:
        self.workspace_model.refresh()
        if state == "refused":
            return  # the Train tab says why; nothing ran
        name = Path(run_dir).name
        titles = {"done": f"Run {name} finished", "paused": f"Run {name} paused", "stopped": f"Run {name} stopped"}
        self.notifier.notify(titles.get(state, f"Run {name} failed"), message, ok=state in titles)

    def _reattach_runs(self, projects: list) -> None:
        """Follow runs whose engine outlived an earlier window (their folder says "running")."""
        for project in projects:
            for run in project.runs:
                if run.state == "running" and not self.runs.is_active(run.path):
                    self.runs.attach(run.path)

    def _on_projects_changed(self, projects: list) -> None:
        self._reattach_runs(projects)
        if self.current_project is None and projects and not self._opened_one:
            # Nothing saved or pending: open a project rather than an empty window (the demo, if there).
            from engine.workspace import DEMO_PROJECT

            demo = next((p for p in projects if p.name == DEMO_PROJECT), projects[0])
            self.browser.select_project(demo.path)
        self._opened_one = True
        if self._background:
            self.prepare_demo_model(projects)
        self.pages.show_project(self.workspace_model.project(self.current_project))
        self._update_title()

    def _on_item_activated(self, kind: str, path) -> None:
        if kind in ("dataset", "datasets"):
            self.pages.setCurrentIndex(0)
            if kind == "dataset" and path is not None:
                self.data_page.choose_dataset(Path(path))
        elif kind in ("run", "runs", "checkpoint"):
            self.pages.setCurrentIndex(1)
        elif kind == "adapter":
            self.pages.setCurrentIndex(2)

    def _on_busy(self, text: str) -> None:
        busy = bool(text) or self._demo_process is not None
        self.busy_bar.setVisible(busy)
        if not text and self._demo_process is not None:
            text = PREPARING_DEMO
        self.busy_label.setText(text)

    def _on_failed(self, message: str, hint: str = "") -> None:
        self.statusBar().showMessage(message, 10000)
        self.warn("Whetstone", message, hint)

    def warn(self, title: str, message: str, hint: str = "") -> None:
        """One place for error boxes (tests replace it)."""
        QMessageBox.warning(self, title, f"{message}\n\n{hint}".strip())

    def ask_text(self, title: str, label: str, text: str = "") -> str | None:
        value, ok = QInputDialog.getText(self, title, label, QLineEdit.EchoMode.Normal, text)
        return value.strip() if ok and value.strip() else None

    def confirm(self, title: str, message: str, action: str) -> bool:
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Cancel, self)
        yes = box.addButton(action, QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is yes

    # ---- actions -------------------------------------------------------------------------
    def new_project(self) -> None:
        name = self.ask_text("New project", "Project name:")
        if name:
            self.workspace_model.create_project(name, on_done=self.browser.select_project)

    def rename_project(self) -> None:
        project = self.workspace_model.project(self.current_project)
        if project is None:
            return
        name = self.ask_text("Rename project", "New name:", project.name)
        if name and name != project.name:
            self.workspace_model.rename_project(project.path, name)

    def duplicate_project(self) -> None:
        project = self.workspace_model.project(self.current_project)
        if project is None:
            return
        name = self.ask_text("Duplicate project", "Name of the copy (datasets and settings are copied, runs are not):",
                             f"{project.name} copy")
        if name:
            self.workspace_model.duplicate_project(project.path, name, on_done=self.browser.select_project)

    def delete_project(self) -> None:
        project = self.workspace_model.project(self.current_project)
        if project is None:
            return
        runs = len(project.runs)
        detail = f" and its {runs} run{'s' if runs != 1 else ''} (checkpoints and adapters)" if runs else ""
        message = (f"Delete the project “{project.name}”{detail}?\n\n{project.path}\n\n"
                   "Its folder is removed from disk. This cannot be undone.")
        if self.confirm("Delete project", message, "Delete"):
            self.workspace_model.delete_project(project.path)

    def reveal_current(self) -> None:
        kind, path = self.browser.current_item()
        if path is not None:
            self.reveal(path)

    def reveal(self, path: Path) -> None:
        path = Path(path)
        folder = path if path.is_dir() else path.parent
        if not folder.exists():
            self.warn("Not found", f"{folder} no longer exists.")
            return
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def change_workspace(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Workspace folder", str(self.workspace_model.workspace.root))
        if not folder:
            return
        self.settings.workspace = folder
        self.settings.sync()
        note = ""
        if "WHETSTONE_HOME" in self.workspace_why:
            note = "\n\nWHETSTONE_HOME is set in the environment and still wins until it is unset."
        QMessageBox.information(self, "Workspace folder", f"Whetstone will use {folder} from the next start.{note}")

    def set_theme(self, key: str) -> None:
        self.settings.theme = key
        apply_theme(QApplication.instance(), key)

    def open_library(self):
        from app.library.dialog import ModelLibraryDialog
        from engine.models.library import ModelLibrary

        if self._library_dialog is None:
            self._library_dialog = ModelLibraryDialog(ModelLibrary(self.workspace_model.workspace.root), self.tasks,
                                                      parent=self)
            self._library_dialog.modelChosen.connect(self.use_model)
            self._library_dialog.finished.connect(lambda _r: self.scan_models())
        else:
            self._library_dialog.rescan()
        self._library_dialog.use_button.setEnabled(self.current_project is not None)
        self._library_dialog.show()
        self._library_dialog.raise_()
        return self._library_dialog

    def use_model(self, info) -> None:
        """Set the chosen library model as the current project's base model."""
        from engine.workspace import load_project_config, save_project_config

        path = self.current_project
        if path is None:
            self.warn("No project", "Select a project first, then choose its model.")
            return

        def change(_p, _c):
            config = load_project_config(path)
            config = config.with_overrides({"model.path": str(info.path),
                                            "model.trust_remote_code": bool(info.needs_remote_code)})
            save_project_config(path, config)

        def changed(_result) -> None:
            self.train_page.setup.choose_model(str(info.path))
            self.workspace_model.refresh()

        self.tasks.run(change, changed, self._on_failed, name="set model")
        self.statusBar().showMessage(f"{info.name} is now the base model of this project.", 6000)

    def export_source(self) -> Path | None:
        """The run, adapter or checkpoint selected in the browser that can be exported."""
        kind, path = self.browser.current_item()
        if kind == "run":
            project = self.workspace_model.project(self.current_project)
            run = next((r for r in project.runs if r.path == path), None) if project else None
            return path if run is not None and (run.adapter or run.checkpoints) else None
        return path if kind in ("adapter", "checkpoint") else None

    def export_current(self):
        from app.export.dialog import ExportDialog

        source = self.export_source()
        if source is None or self.current_project is None:
            self.warn("Nothing to export", "Select a run that has an adapter or a checkpoint.")
            return None
        dialog = ExportDialog(self.current_project, source, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.exported.connect(lambda _path: self.workspace_model.refresh())
        dialog.show()
        return dialog

    def show_diagnostics(self) -> DiagnosticsDialog:
        dialog = DiagnosticsDialog(self.probe, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def show_about(self) -> None:
        from importlib.metadata import version

        root = self.workspace_model.workspace.root
        QMessageBox.about(self, "About Whetstone", (
            f"<b>Whetstone {version('whetstone')}</b><br>Fine-tune open LLMs with QLoRA on your own machine, offline."
            f"<br><br>Workspace: {html.escape(str(root))}<br>({html.escape(self.workspace_why)})"))
