"""The project browser: projects → datasets, runs (state, last loss, date) and their
checkpoints/adapters, and exports. It rebuilds from the workspace model's summaries and
keeps the user's expansion and selection across rebuilds."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QAction, QFont, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QMenu,
    QStyle,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from app.widgets.run_labels import run_details, run_title
from engine.util.files import format_size

KIND_ROLE = Qt.ItemDataRole.UserRole + 1
PATH_ROLE = Qt.ItemDataRole.UserRole + 2
PROJECT_ROLE = Qt.ItemDataRole.UserRole + 3


class ProjectBrowser(QWidget):
    projectSelected = Signal(object)  # Path of the selected item's project, or None
    itemActivated = Signal(str, object)  # kind, path (double click / Enter)
    renameRunRequested = Signal(Path)  # a run's display name (its folder keeps its name)

    def __init__(self, workspace_model, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._workspace = workspace_model
        self.model = QStandardItemModel(0, 2, self)
        self.model.setHorizontalHeaderLabels(["Project", "Details"])
        self.tree = QTreeView(self)
        self.tree.setModel(self.model)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(False)
        self.tree.header().setStretchLastSection(True)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._on_context_menu)
        self.tree.selectionModel().currentChanged.connect(self._on_current_changed)
        self.tree.activated.connect(self._on_activated)
        self.tree.setAccessibleName("Projects")
        # Never so narrow that a project's name is cut to "Wh…": a name of about 16 characters,
        # the tree's indentation, an icon and the frame fit at the minimum.
        metrics = self.tree.fontMetrics()
        indent = self.tree.indentation()
        self.setMinimumWidth(metrics.horizontalAdvance("Whetstone demo xx") + 2 * indent + 40)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        self._project_actions: list[QAction] = []
        self._item_actions: list[QAction] = []
        self._pending_select: Path | None = None
        self._first_build = True
        self._announced: Path | None = None
        workspace_model.changed.connect(self._on_projects_changed)

    # ---- public --------------------------------------------------------------------------
    def default_width(self) -> int:
        """A first-start width that shows the project names and a little of their details."""
        return max(self.minimumWidth() + 80, self.tree.fontMetrics().horizontalAdvance("M" * 24))

    def set_actions(self, project_actions: list[QAction], item_actions: list[QAction]) -> None:
        self._project_actions, self._item_actions = project_actions, item_actions

    def current_project(self) -> Path | None:
        return self._project_of(self.tree.currentIndex())

    def current_item(self) -> tuple[str, Path | None]:
        index = self.tree.currentIndex()
        if not index.isValid():
            return "", None
        item = self.model.itemFromIndex(index.siblingAtColumn(0))
        return item.data(KIND_ROLE) or "", item.data(PATH_ROLE)

    def select_project(self, path: Path | str | None) -> None:
        """Select a project now, or as soon as a scan lists it (after create/duplicate)."""
        if path is None:
            return
        path = Path(path)
        item = self._find(str(path))
        if item is None:
            self._pending_select = path
            return
        self._pending_select = None
        index = item.index()
        self.tree.setCurrentIndex(index)
        self.tree.scrollTo(index)
        self._announce(path)

    # ---- building ------------------------------------------------------------------------
    def _on_projects_changed(self, projects: list) -> None:
        expanded = self._expanded_keys()
        kind, selected = self.current_item()
        selected_project = self.current_project()
        self.tree.selectionModel().blockSignals(True)
        self.model.removeRows(0, self.model.rowCount())
        for project in projects:
            self.model.appendRow(self._project_row(project))
        self.tree.selectionModel().blockSignals(False)
        if self._first_build:
            self._first_build = False
            expanded = {str(p.path) for p in projects}
        for key in expanded:
            item = self._find(key)
            if item is not None:
                self.tree.expand(item.index())
        item = None
        if self._pending_select is not None:
            item = self._find(str(self._pending_select))
            if item is not None:
                self._pending_select = None
        for key in (selected, selected_project):
            if item is None and key is not None:
                item = self._find(str(key))
        if item is not None:
            self.tree.setCurrentIndex(item.index())
            self.tree.scrollTo(item.index())
        self._announce(self.current_project())

    def _project_row(self, project) -> list[QStandardItem]:
        style = self.style()
        name = QStandardItem(style.standardIcon(QStyle.StandardPixmap.SP_DirIcon), project.name)
        font = QFont(name.font())
        font.setBold(True)
        name.setFont(font)
        self._tag(name, "project", project.path, project.path)
        name.setToolTip(str(project.path))
        if project.problem:
            name.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning))
            name.setToolTip(project.problem)
            return [name, self._detail(project.problem)]
        datasets = self._group("Datasets", "datasets", project, len(project.datasets))
        for ds in project.datasets:
            item = QStandardItem(style.standardIcon(QStyle.StandardPixmap.SP_FileIcon), ds.name)
            self._tag(item, "dataset", ds.path, project.path)
            default = project.dataset and Path(project.dataset).name == ds.name
            datasets[0].appendRow(
                [item, self._detail(format_size(ds.size_bytes) + (" · used for training" if default else ""))]
            )
        runs = self._group("Runs", "runs", project, len(project.runs))
        for run in project.runs:
            item = QStandardItem(self._run_icon(run.state), run_title(run))
            self._tag(item, "run", run.path, project.path)
            item.setToolTip(f"{run.path.name}\n{run.message}" if run.message else run.path.name)
            for step, path in run.checkpoints:
                child = QStandardItem(style.standardIcon(QStyle.StandardPixmap.SP_DriveHDIcon), path.name)
                self._tag(child, "checkpoint", path, project.path)
                item.appendRow([child, self._detail(f"resumable from step {step}")])
            if run.adapter:
                child = QStandardItem(
                    style.standardIcon(QStyle.StandardPixmap.SP_DialogApplyButton), "adapter"
                )
                self._tag(child, "adapter", run.adapter, project.path)
                item.appendRow([child, self._detail("final LoRA adapter")])
            elif run.model:
                child = QStandardItem(style.standardIcon(QStyle.StandardPixmap.SP_DialogApplyButton), "model")
                self._tag(child, "adapter", run.model, project.path)
                item.appendRow([child, self._detail("fine-tuned model (full fine-tuning)")])
            runs[0].appendRow([item, self._detail(run_details(run))])
        exports = self._group("Exports", "exports", project, len(project.exports))
        for path in project.exports:
            item = QStandardItem(style.standardIcon(QStyle.StandardPixmap.SP_FileIcon), path.name)
            self._tag(item, "export", path, project.path)
            exports[0].appendRow([item, self._detail("")])
        for group in (datasets, runs, exports):
            name.appendRow(group)
        model_name = Path(project.model).name if project.model else "no model chosen"
        return [name, self._detail(model_name)]

    def _group(self, label: str, kind: str, project, count: int) -> list[QStandardItem]:
        item = QStandardItem(label)
        self._tag(item, kind, project.path / kind, project.path)
        return [item, self._detail(str(count) if count else "none yet")]

    def _run_icon(self, state: str):
        pixmap = {
            "running": QStyle.StandardPixmap.SP_MediaPlay,
            "done": QStyle.StandardPixmap.SP_DialogApplyButton,
            "failed": QStyle.StandardPixmap.SP_MessageBoxCritical,
            "stopped": QStyle.StandardPixmap.SP_MediaStop,
            "paused": QStyle.StandardPixmap.SP_MediaPause,
            "interrupted": QStyle.StandardPixmap.SP_MessageBoxWarning,
        }.get(state, QStyle.StandardPixmap.SP_FileIcon)
        return self.style().standardIcon(pixmap)

    @staticmethod
    def _tag(item: QStandardItem, kind: str, path: Path, project: Path) -> None:
        item.setData(kind, KIND_ROLE)
        item.setData(path, PATH_ROLE)
        item.setData(project, PROJECT_ROLE)

    @staticmethod
    def _detail(text: str) -> QStandardItem:
        item = QStandardItem(text)
        item.setForeground(Qt.GlobalColor.gray)
        return item

    def _key(self, item: QStandardItem) -> str:
        return str(item.data(PATH_ROLE))

    def _find(self, key: str) -> QStandardItem | None:
        def walk(parent: QStandardItem) -> QStandardItem | None:
            for row in range(parent.rowCount()):
                child = parent.child(row, 0)
                if self._key(child) == key:
                    return child
                found = walk(child)
                if found is not None:
                    return found
            return None

        return walk(self.model.invisibleRootItem())

    def _expanded_keys(self) -> set[str]:
        keys: set[str] = set()

        def walk(parent: QStandardItem) -> None:
            for row in range(parent.rowCount()):
                child = parent.child(row, 0)
                if self.tree.isExpanded(child.index()):
                    keys.add(self._key(child))
                    walk(child)

        walk(self.model.invisibleRootItem())
        return keys

    # ---- slots ---------------------------------------------------------------------------
    def _project_of(self, index: QModelIndex) -> Path | None:
        if not index.isValid():
            return None
        return self.model.itemFromIndex(index.siblingAtColumn(0)).data(PROJECT_ROLE)

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._announce(self._project_of(current))

    def _announce(self, project: Path | None) -> None:
        """Tell listeners about a different project, not about every rebuild."""
        if project != self._announced:
            self._announced = project
            self.projectSelected.emit(project)

    def _on_activated(self, index: QModelIndex) -> None:
        item = self.model.itemFromIndex(index.siblingAtColumn(0))
        self.itemActivated.emit(item.data(KIND_ROLE) or "", item.data(PATH_ROLE))

    def _on_context_menu(self, pos) -> None:
        index = self.tree.indexAt(pos)
        menu = QMenu(self)
        if index.isValid():
            self.tree.setCurrentIndex(index)
            kind = self.model.itemFromIndex(index.siblingAtColumn(0)).data(KIND_ROLE)
            actions = self._project_actions if kind == "project" else self._item_actions
            menu.addActions(actions)
            if kind == "run":
                path = self.model.itemFromIndex(index.siblingAtColumn(0)).data(PATH_ROLE)
                menu.addAction("Rename run…", lambda: self.renameRunRequested.emit(Path(path)))
        else:
            menu.addActions(self._project_actions[:1])  # "New project" only
        menu.exec(self.tree.viewport().mapToGlobal(pos))
