"""The main window: project browser on the left, Data/Train/Chat in the middle, and a
status bar with the compute device and the offline state.

The window assembles the pages and routes signals between them; the work lives in
collaborators: ProjectActions (create, rename, duplicate, delete, reveal, export), DemoModel
(the first start's conversion, a state every page that needs the model follows) and
ModelChoice (the model library and a project's base model). Nothing slow happens here.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QInputDialog,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QWidget,
)

from app.chat.page import ChatPage
from app.data.page import DataPage
from app.eval.page import EvalPage
from app.infra.tasks import TaskRunner
from app.shell.demo_model import PREPARING_DEMO, DemoModel
from app.shell.diagnostics_dialog import DeviceProbe, DiagnosticsDialog
from app.shell.model_choice import ModelChoice
from app.shell.notifications import Notifier
from app.shell.preferences import AppSettings
from app.shell.project_actions import ProjectActions
from app.shell.project_browser import ProjectBrowser
from app.shell.project_pages import ProjectPages
from app.shell.status_bar import StatusBar
from app.shell.workspace_model import WorkspaceModel
from app.train.page import TrainPage
from app.train.run_manager import RunManager
from app.widgets.run_labels import run_title
from app.widgets.theme import apply_theme


class MainWindow(QMainWindow):
    def __init__(
        self,
        settings: AppSettings,
        workspace_root: Path,
        workspace_why: str = "",
        background: bool = True,
        parent: QWidget | None = None,
        prepare_demo: bool | None = None,
    ) -> None:
        """`background=False` skips the device probe and (unless `prepare_demo`) the demo model (tests)."""
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
        self.eval_page = EvalPage(self)
        self.pages = ProjectPages(self.data_page, self.train_page, self.chat_page, self.eval_page, self)
        self.probe = DeviceProbe(self)
        self._background = background
        self.demo = DemoModel(background if prepare_demo is None else prepare_demo, self)
        self.project_actions = ProjectActions(self.workspace_model, self.browser, self, self)
        self.library = ModelChoice(workspace_root, self.tasks, self)
        self.current_project: Path | None = None
        self._opened_one = False
        self._leave_runs = False  # close without asking: runs go on (a signal, a logout)

        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.browser)
        splitter.addWidget(self.pages)
        splitter.setStretchFactor(0, 0)  # a wider window widens the pages; the browser keeps its width
        splitter.setStretchFactor(1, 1)
        splitter.setChildrenCollapsible(False)
        self.splitter = splitter
        self.setCentralWidget(splitter)
        self.setMinimumSize(860, 540)
        # First start: most of the screen (the Data and Train pages are laid out for about 1300 px).
        available = self.screen().availableGeometry()
        self.resize(
            max(1180, min(1440, int(available.width() * 0.92))),
            max(740, min(900, int(available.height() * 0.9))),
        )

        self.status_bar = StatusBar(probing=background, parent=self)
        self.setStatusBar(self.status_bar)
        self._build_actions()
        self.browser.projectSelected.connect(self._on_project_selected)
        self.browser.itemActivated.connect(self._on_item_activated)
        self.browser.tree.selectionModel().currentChanged.connect(self._on_item_changed)
        self.workspace_model.changed.connect(self._on_projects_changed)
        self.workspace_model.failed.connect(self._on_failed)
        self.workspace_model.busy.connect(self._on_busy)
        self.probe.ready.connect(self._on_device_report)
        self.train_page.openLibrary.connect(self.library.open)
        self.library.models_scanned.connect(self.train_page.setup.set_models)
        self.library.model_set.connect(self._on_model_set)
        self.library.failed.connect(self._on_failed)
        self.library.status.connect(lambda text: self.status_bar.note(text, 6000))
        self.demo.preparing.connect(self._on_demo_preparing)
        self.demo.ready.connect(self._on_demo_ready)
        self.demo.failed.connect(self._on_demo_failed)
        self.demo.stopped.connect(lambda: self._on_demo_ended(str(self.demo.folder)))
        self.train_page.failed.connect(self._on_failed)
        # A finished run's next steps (and the runs list's menu): chat with it, export it, rename it.
        self.train_page.chatRequested.connect(
            lambda run: self.chat_page.chat_with(run) and self.pages.setCurrentIndex(2)
        )
        self.train_page.exportRequested.connect(self.project_actions.export)
        self.train_page.evaluateRequested.connect(self._evaluate_run)
        self.eval_page.reportReady.connect(lambda _path: self.workspace_model.refresh())  # run headlines
        self.eval_page.set_evaluate_after_runs(self.settings.evaluate_after_runs)
        self.eval_page.evaluateAfterRunsChanged.connect(
            lambda on: setattr(self.settings, "evaluate_after_runs", on)
        )
        self.train_page.runRenamed.connect(lambda _run: self.workspace_model.refresh())
        self.browser.renameRunRequested.connect(self.train_page.rename_run)
        self.data_page.failed.connect(self._on_failed)
        self.train_page.aboutToStart.connect(self._on_about_to_start)
        self.chat_page.rowForDataset.connect(self.data_page.add_chat_row)
        self.chat_page.recordForDataset.connect(self.data_page.add_record)
        self.chat_page.failed.connect(self._on_failed)
        self.chat_page.status.connect(lambda text: self.status_bar.note(text, 10000))
        self.data_page.status.connect(lambda text: self.status_bar.note(text, 10000))
        self.runs.finished.connect(self._on_run_finished)
        self.runs.started.connect(self._on_run_started)
        self.runs.started.connect(lambda _run: self.workspace_model.refresh())
        self.runs.events.connect(self.workspace_model.note_run_events)  # status and checkpoints rescan
        self._restore_state()
        self._update_title()
        QTimer.singleShot(0, self._start)

    # ---- start-up ------------------------------------------------------------------------
    def _start(self) -> None:
        """After the first paint: first-start demo project, the scan, and background probes."""
        saved = self.settings.current_project

        def opened(demo_path) -> None:
            self.browser.select_project(demo_path or saved or None)
            self.workspace_model.refresh()  # its result starts the demo model when a project needs it

        self.tasks.run(
            lambda _p, _c: self.workspace_model.workspace.first_start(),
            opened,
            self._on_failed,
            name="first start",
        )
        self.library.scan()
        self.train_page.prewarm()
        if self._background:
            self.probe.start()

    # ---- the demo model: every view that needs it waits quietly, then checks again -------
    def _on_demo_preparing(self, folder: str) -> None:
        self._on_busy(PREPARING_DEMO)
        for page in (self.data_page, self.train_page.setup, self.chat_page):
            page.set_model_preparing(folder, True)

    def _on_demo_ended(self, folder: str) -> None:
        self._on_busy("")
        for page in (self.data_page, self.train_page.setup, self.chat_page):
            page.set_model_preparing(folder, False)

    def _on_demo_ready(self, folder: str) -> None:
        self._on_demo_ended(folder)
        self.status_bar.note("The demo model is ready.", 8000)
        self.library.scan()  # the run setup lists it from the library now
        self.workspace_model.refresh()

    def _on_demo_failed(self, message: str, hint: str) -> None:
        self._on_demo_ended(str(self.demo.folder))
        self._on_failed(message, hint)

    # ---- building ------------------------------------------------------------------------
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
        projects = self.project_actions
        self.new_action = self._action(
            "&New project…", projects.new_project, QKeySequence.StandardKey.New, file
        )
        file.addSeparator()
        self._action("Change &workspace folder…", self.change_workspace, None, file)
        self._action(
            "Show workspace in file manager",
            lambda: projects.reveal(self.workspace_model.workspace.root),
            None,
            file,
        )
        file.addSeparator()
        self._action("&Quit", self.close, QKeySequence.StandardKey.Quit, file)

        project = bar.addMenu("&Project")
        self.rename_action = self._action("&Rename…", self._rename_selected, "F2", project)
        self.duplicate_action = self._action("&Duplicate…", projects.duplicate_project, "Ctrl+D", project)
        self.delete_action = self._action(
            "De&lete…", projects.delete_project, QKeySequence.StandardKey.Delete, project
        )
        # Del deletes a project only from the project browser: in the Data tab it deletes rows.
        self.removeAction(self.delete_action)
        self.browser.addAction(self.delete_action)
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.export_action = self._action(
            "E&xport run…",
            projects.export_current,
            "Ctrl+E",
            project,
            "Write a merged model or a GGUF file (+ Ollama Modelfile) and check it",
        )
        project.addSeparator()
        self.reveal_action = self._action(
            "Show in file &manager", projects.reveal_current, "Ctrl+Shift+R", project
        )
        self._action("Re&fresh", self.workspace_model.refresh, QKeySequence.StandardKey.Refresh, project)

        models = bar.addMenu("&Models")
        self._action("Model &library…", self.library.open, "Ctrl+L", models)
        self._action("&Add model folder…", self.library.add_folder, None, models)
        self._action("&Import GGUF file…", self.library.import_gguf, None, models)

        view = bar.addMenu("&View")
        for i, name in enumerate(("&Data", "&Train", "&Chat", "&Evaluate")):
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
            [
                self.new_action,
                self.rename_action,
                self.duplicate_action,
                self.delete_action,
                self.reveal_action,
            ],
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
        if splitter is None or not self.splitter.restoreState(splitter):
            width = self.browser.default_width()  # one state for the window, whatever the tab
            self.splitter.setSizes([width, max(self.width() - width, self.pages.minimumWidth())])
        self.pages.setCurrentIndex(max(0, min(tab, self.pages.count() - 1)))

    def save_state(self) -> None:
        self.settings.save_window_state(
            self.saveGeometry(), self.saveState(), self.splitter.saveState(), self.pages.currentIndex()
        )
        self.settings.current_project = str(self.current_project or "")
        self.settings.sync()

    def ask_about_running(self, count: int) -> str:
        """Closing during a run: "stop", "leave" (it goes on; the next start re-attaches) or "cancel"."""
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "A run is training",
            f"{count} run{'s are' if count != 1 else ' is'} still training.\n\n"
            "Leave it running: training goes on without the window, and Whetstone shows it "
            "again when you reopen it.\nStop: it saves a checkpoint and ends; you can resume later.",
            QMessageBox.StandardButton.Cancel,
            self,
        )
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
        if running and not self._leave_runs:
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
        self.eval_page.shutdown()
        self.save_state()
        self.probe.stop()
        self.library.shutdown()
        self.demo.stop()  # the conversion starts over next time; nothing half-made is kept
        self.tasks.wait(3000)
        super().closeEvent(event)

    def _update_title(self) -> None:
        project = self.workspace_model.project(self.current_project)
        self.setWindowTitle(f"{project.name} — Whetstone" if project else "Whetstone")

    def _update_actions(self) -> None:
        has = self.current_project is not None
        for action in (self.rename_action, self.duplicate_action, self.delete_action):
            action.setEnabled(has)
        self.export_action.setEnabled(self.project_actions.export_source() is not None)

    # ---- slots ---------------------------------------------------------------------------
    def _on_item_changed(self, *_args) -> None:
        self._update_actions()

    def _on_project_selected(self, path) -> None:
        self.current_project = path
        self.library.set_project(path)
        self.pages.show_project(self.workspace_model.project(path))
        self._update_title()
        self._update_actions()

    def _on_device_report(self, report: dict) -> None:
        self.status_bar.set_device(self.probe.device_summary())
        self.train_page.setup.set_device_report(report)

    def _on_model_set(self, folder: str) -> None:
        self.train_page.setup.choose_model(folder)
        self.workspace_model.refresh()

    def _on_about_to_start(self, request) -> None:
        """A run on a file open in the Data tab starts only once its edits are saved or set aside."""
        if not self.data_page.ready_for_training(request.data_path):
            request.refuse()

    def _in_current_project(self, run_dir: Path) -> bool:
        """Runs live in PROJECT/runs/<run>: the Evaluate tab evaluates within the project it shows."""
        current = self.current_project
        return current is not None and Path(run_dir).resolve().parent.parent == Path(current).resolve()

    def _evaluate_run(self, run_dir: Path) -> None:
        self.pages.setCurrentWidget(self.eval_page)
        self.eval_page.evaluate_runs([Path(run_dir)])

    def _on_run_started(self, _run_dir: Path) -> None:
        """A run (new, resumed or trained further) needs the GPU's memory: the chat gives its model back."""
        if self.chat_page.release_gpu():
            self.status_bar.note(
                "Unloaded the Chat tab's model from the GPU: the run needs its memory (Load brings it back).",
                15000,
            )

    def _on_run_finished(self, run_dir: Path, state: str, message: str) -> None:
        self.workspace_model.refresh()
        if state == "refused":
            return  # the Train tab says why; nothing ran
        if state == "done" and self.eval_page.evaluate_after_runs and self._in_current_project(run_dir):
            self.eval_page.evaluate_runs([Path(run_dir)])  # "did it help, and what did it cost?"
        name = f"“{run_title(run_dir)}”"
        titles = {
            "done": f"Run {name} finished",
            "paused": f"Run {name} paused",
            "stopped": f"Run {name} stopped",
        }
        self.notifier.notify(titles.get(state, f"Run {name} failed"), message, ok=state in titles)

    def _reattach_runs(self, projects: list) -> None:
        """Follow runs whose engine outlived an earlier window (their folder says "running")."""
        for project in projects:
            for run in project.runs:
                if run.state == "running" and not self.runs.is_active(run.path):
                    self.runs.attach(run.path)

    def _on_projects_changed(self, projects: list) -> None:
        self.demo.prepare_for(projects)  # first: pages shown below already know the model is on its way
        self._reattach_runs(projects)
        if self.current_project is None and projects and not self._opened_one:
            # Nothing saved or pending: open a project rather than an empty window (the demo, if there).
            from engine.workspace import DEMO_PROJECT

            demo = next((p for p in projects if p.name == DEMO_PROJECT), projects[0])
            self.browser.select_project(demo.path)
        self._opened_one = True
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
        self.status_bar.show_busy(text, PREPARING_DEMO if self.demo.is_preparing() else "")

    def _on_failed(self, message: str, hint: str = "") -> None:
        self.status_bar.note(message, 10000)
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
    def _rename_selected(self) -> None:
        kind, path = self.browser.current_item()
        if kind == "run" and self.browser.tree.hasFocus():  # F2 on a run in the browser renames the run
            self.train_page.rename_run(path)
            return
        self.project_actions.rename_project()

    def change_workspace(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Workspace folder", str(self.workspace_model.workspace.root)
        )
        if not folder:
            return
        self.settings.workspace = folder
        self.settings.sync()
        note = ""
        if "WHETSTONE_HOME" in self.workspace_why:
            note = "\n\nWHETSTONE_HOME is set in the environment and still wins until it is unset."
        QMessageBox.information(
            self, "Workspace folder", f"Whetstone will use {folder} from the next start.{note}"
        )

    def set_theme(self, key: str) -> None:
        self.settings.theme = key
        apply_theme(QApplication.instance(), key)

    def open_library(self):
        """The model library dialog (returned for tests)."""
        return self.library.open()

    def show_diagnostics(self) -> DiagnosticsDialog:
        dialog = DiagnosticsDialog(self.probe, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def show_about(self) -> None:
        from importlib.metadata import version

        root = self.workspace_model.workspace.root
        QMessageBox.about(
            self,
            "About Whetstone",
            (
                f"<b>Whetstone {version('whetstone')}</b><br>"
                "Fine-tune open LLMs with QLoRA on your own machine, offline."
                f"<br><br>Workspace: {html.escape(str(root))}<br>({html.escape(self.workspace_why)})"
            ),
        )
