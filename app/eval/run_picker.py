"""Which runs to evaluate: the project's finished runs (their final adapters) as ticks, each run's
saved checkpoints as ticks under it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QLabel, QTreeWidget, QTreeWidgetItem, QWidget

from app.widgets.run_labels import checkpoints_best_first, run_details, run_title
from app.widgets.theme import muted

PATH_ROLE = Qt.ItemDataRole.UserRole
RUN_ROLE = Qt.ItemDataRole.UserRole + 1
NO_RUNS = (
    "No finished runs yet. Evaluate scores the base model alone: the baseline that runs are "
    "compared with. Train a run on the Train tab, then tick it here."
)


class RunPicker(QTreeWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderHidden(True)
        self.setColumnCount(1)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setToolTip("Tick the runs to compare with the base model; expand a run to tick its checkpoints.")
        self.setWordWrap(True)
        self.setUniformRowHeights(False)
        self.empty_note = QLabel(NO_RUNS, self.viewport(), wordWrap=True)
        self.empty_note.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.empty_note.setStyleSheet(f"color: {muted(self.palette())}; padding: 6px;")

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self.empty_note.setGeometry(self.viewport().rect())

    def show_runs(self, runs, keep: bool) -> None:
        """List `runs` (RunSummary, newest first). keep=True keeps the ticks of a rescan of the same
        project; otherwise the newest finished run is ticked."""
        ticked = set(self.checked()) if keep else set()
        current = self.current_run()
        expanded = {
            self.topLevelItem(i).data(0, RUN_ROLE)
            for i in range(self.topLevelItemCount())
            if keep and self.topLevelItem(i).isExpanded()
        }
        self.clear()
        for run in runs:
            if run.state == "running" or (run.adapter is None and run.model is None and not run.checkpoints):
                continue  # nothing finished to evaluate yet
            item = QTreeWidgetItem([f"{run_title(run)}\n{run_details(run)}"])
            item.setData(0, RUN_ROLE, str(run.path))
            if run.adapter is not None or run.model is not None:
                item.setData(
                    0, PATH_ROLE, str(run.path)
                )  # the engine takes a run folder as its final adapter
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(0, Qt.CheckState.Unchecked)
                item.setToolTip(0, f"The final adapter of {run.path}")
            else:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsUserCheckable)
                item.setToolTip(
                    0, f"{run.path}\nNo final adapter (stopped early): tick a checkpoint instead."
                )
            for step, path, best in checkpoints_best_first(run):
                child = QTreeWidgetItem([f"checkpoint · step {step}" + (" · best" if best else "")])
                child.setData(0, PATH_ROLE, str(path))
                child.setData(0, RUN_ROLE, str(run.path))
                child.setFlags(child.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                child.setCheckState(0, Qt.CheckState.Unchecked)
                child.setToolTip(0, str(path))
                item.addChild(child)
            self.addTopLevelItem(item)
            item.setExpanded(str(run.path) in expanded)
        self.empty_note.setVisible(not self.topLevelItemCount())  # an empty box says nothing to a new user
        if not keep:
            first = next((i for i in self._items() if i.parent() is None and i.data(0, PATH_ROLE)), None)
            ticked = {Path(first.data(0, PATH_ROLE))} if first else set()
        for item in self._items():
            path = item.data(0, PATH_ROLE)
            if path and Path(path) in ticked:
                item.setCheckState(0, Qt.CheckState.Checked)
                if item.parent() is not None:
                    item.parent().setExpanded(True)
            if current and item.parent() is None and Path(item.data(0, RUN_ROLE)) == current:
                self.setCurrentItem(item)

    def _items(self) -> list[QTreeWidgetItem]:
        found = []
        for i in range(self.topLevelItemCount()):
            top = self.topLevelItem(i)
            found.append(top)
            found += [top.child(j) for j in range(top.childCount())]
        return found

    def checked(self) -> list[Path]:
        """The ticked adapters: run folders and checkpoint folders, in list order."""
        return [
            Path(item.data(0, PATH_ROLE))
            for item in self._items()
            if item.data(0, PATH_ROLE) and item.checkState(0) == Qt.CheckState.Checked
        ]

    def set_checked(self, paths: list[Path]) -> None:
        wanted = {Path(p) for p in paths}
        for item in self._items():
            if item.data(0, PATH_ROLE):
                state = Path(item.data(0, PATH_ROLE)) in wanted
                item.setCheckState(0, Qt.CheckState.Checked if state else Qt.CheckState.Unchecked)

    def has_runs(self) -> bool:
        return self.topLevelItemCount() > 0

    def current_run(self) -> Path | None:
        item = self.currentItem()
        return Path(item.data(0, RUN_ROLE)) if item is not None and item.data(0, RUN_ROLE) else None
