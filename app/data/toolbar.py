"""The Data tab's two bars: dataset, files and edit actions; then find, filter and sort."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.data.row_filter import ANY_PROBLEM, NO_PROBLEM, RowFilter
from engine.data.review import KIND_LABELS

_SORTS = (("File order", "file"), ("Shortest first", "shortest"), ("Longest first", "longest"))


class DataToolbar(QWidget):
    dataset_chosen = Signal(object)  # Path
    filter_changed = Signal(object)  # RowFilter
    import_clicked = Signal()
    export_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = None
        self.undo_action = self._stack_action("Undo", QKeySequence.StandardKey.Undo)
        self.redo_action = self._stack_action("Redo", QKeySequence.StandardKey.Redo)
        self.datasets = QComboBox(self)
        self.datasets.setMinimumWidth(200)
        self.datasets.setToolTip("The project's datasets (copies in its datasets folder)")
        self.datasets.activated.connect(self._on_dataset_activated)
        self.import_button = QPushButton("Import…", self)
        self.import_button.setToolTip("Copy a data file into the project (your file is never changed)")
        self.import_button.clicked.connect(self.import_clicked)
        self.export_button = QPushButton("Export…", self)
        self.export_button.setToolTip("Write the rows as JSON Lines or Parquet anywhere you like")
        self.export_button.clicked.connect(self.export_clicked)
        self.actions_row = QHBoxLayout()
        self.actions_row.setSpacing(2)
        self.state = QLabel(self)
        self.progress = QProgressBar(self)
        self.progress.setMaximumWidth(160)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.progress_label = QLabel(self)
        for label in (self.state, self.progress_label):
            label.setMinimumWidth(
                1
            )  # a long status may be clipped: it never widens the page over the browser

        self.find = QLineEdit(self)
        self.find.setPlaceholderText("Find text in rows…")
        self.find.setClearButtonEnabled(True)
        self.find.textChanged.connect(self._emit_filter)
        self.problem = QComboBox(self)
        self.problem.setToolTip("Show only rows with a problem")
        self.problem.currentIndexChanged.connect(self._emit_filter)
        self.min_tokens, self.max_tokens = QSpinBox(self), QSpinBox(self)
        self.max_tokens.setSpecialValueText("any")
        for box, tip in (
            (self.min_tokens, "At least this many tokens"),
            (self.max_tokens, "At most (0: any)"),
        ):
            box.setRange(0, 10_000_000)
            box.setToolTip(tip)
            box.setKeyboardTracking(False)
            box.valueChanged.connect(self._emit_filter)
        self.sort = QComboBox(self)
        for label, key in _SORTS:
            self.sort.addItem(label, key)
        self.sort.setToolTip("Sort by token length (once lengths are computed)")
        self.sort.currentIndexChanged.connect(self._emit_filter)
        self.count = QLabel(self)
        self.set_problem_kinds({})
        self.set_lengths_known(False)

        first = QHBoxLayout()
        first.addWidget(self.datasets)
        first.addWidget(self.import_button)
        first.addWidget(self.export_button)
        first.addSpacing(10)
        first.addLayout(self.actions_row)
        first.addStretch(1)
        first.addWidget(self.progress_label)
        first.addWidget(self.progress)
        first.addWidget(self.state)
        second = QHBoxLayout()
        second.addWidget(self.find, 2)
        second.addWidget(self.problem, 1)
        second.addWidget(QLabel("Tokens", self))
        second.addWidget(self.min_tokens)
        second.addWidget(QLabel("–", self))
        second.addWidget(self.max_tokens)
        second.addWidget(self.sort)
        second.addWidget(self.count)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 4)
        layout.addLayout(first)
        layout.addLayout(second)

    # ---- actions ----------------------------------------------------------------------------------
    def _tool_button(self, action: QAction) -> QToolButton:
        button = QToolButton(self)
        button.setDefaultAction(action)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.actions_row.addWidget(button)
        return button

    def set_actions(self, actions: list[QAction]) -> None:
        """Save, then Undo/Redo (following the open document's stack), then the row actions."""
        for action in (actions[0], self.undo_action, self.redo_action, *actions[1:]):
            self._tool_button(action)

    def _stack_action(self, name: str, keys) -> QAction:
        # Our own action with a fixed label: QUndoStack's actions rename themselves after every edit.
        # The page adds it to itself, so its shortcut works wherever the focus is in the page.
        action = QAction(name, self)
        action.setShortcut(QKeySequence(keys))
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.setEnabled(False)
        action.triggered.connect(
            lambda _c=False: self.document and getattr(self.document.undo, name.lower())()
        )
        return action

    def set_document(self, document) -> None:
        if self.document is not None:
            stack = self.document.undo
            for signal in (stack.canUndoChanged, stack.canRedoChanged, stack.indexChanged):
                try:
                    signal.disconnect(self._on_stack_changed)
                except (RuntimeError, TypeError):  # the document is already gone
                    pass
        self.document = document
        if document is not None:
            document.undo.canUndoChanged.connect(self._on_stack_changed)
            document.undo.canRedoChanged.connect(self._on_stack_changed)
            document.undo.indexChanged.connect(self._on_stack_changed)
        self._on_stack_changed()
        self.export_button.setEnabled(document is not None)
        self.update_state()

    def _on_stack_changed(self, *_args) -> None:
        stack = self.document.undo if self.document is not None else None
        for action, can, text in (
            (self.undo_action, stack and stack.canUndo(), stack and stack.undoText()),
            (self.redo_action, stack and stack.canRedo(), stack and stack.redoText()),
        ):
            action.setEnabled(bool(can))
            keys = action.shortcut().toString()
            action.setToolTip(f"{action.text()} {text} ({keys})" if text else f"{action.text()} ({keys})")

    def update_state(self) -> None:
        document = self.document
        if document is None:
            self.state.setText("")
            return
        shape = document.shape.name.replace("_", "/")
        dirty = " · <b>unsaved edits</b>" if document.is_dirty() else " · saved"
        self.state.setText(f"{len(document.store):,} rows · {shape}{dirty}")

    def show_progress(self, done: int, total: int, message: str) -> None:
        busy = bool(message)
        self.progress.setVisible(busy)
        self.progress_label.setText(message)
        if busy:
            self.progress.setRange(0, max(total, 0))
            self.progress.setValue(min(done, total) if total else 0)

    def show_count(self, visible: int, total: int) -> None:
        self.count.setText(f"{visible:,} of {total:,} shown" if visible != total else f"{total:,} rows")

    # ---- datasets ------------------------------------------------------------------------------------
    def set_project_enabled(self, enabled: bool) -> None:
        for widget in (self.datasets, self.import_button):
            widget.setEnabled(enabled)

    def set_datasets(self, datasets, chosen: Path | None) -> None:
        self.datasets.blockSignals(True)
        self.datasets.clear()
        for ds in datasets:
            self.datasets.addItem(ds.name, str(ds.path))
        self.datasets.blockSignals(False)
        if chosen is not None:
            self.select_dataset(chosen)

    def add_dataset(self, path: Path) -> None:
        if self.datasets.findData(str(path)) < 0:
            self.datasets.addItem(path.name, str(path))
        self.select_dataset(path)

    def select_dataset(self, path: Path) -> None:
        found = self.datasets.findData(str(path))
        if found < 0:
            self.datasets.addItem(Path(path).name, str(path))
            found = self.datasets.count() - 1
        self.datasets.setCurrentIndex(found)

    def current_dataset(self) -> Path | None:
        data = self.datasets.currentData()
        return Path(data) if data else None

    def _on_dataset_activated(self, _index: int) -> None:
        path = self.current_dataset()
        if path is not None:
            self.dataset_chosen.emit(path)

    # ---- filters --------------------------------------------------------------------------------------
    def set_problem_kinds(self, counts: dict[str, int]) -> None:
        chosen = self.problem.currentData()
        self.problem.blockSignals(True)
        self.problem.clear()
        self.problem.addItem("All rows", "")
        self.problem.addItem("Rows with a problem", ANY_PROBLEM)
        self.problem.addItem("Rows without problems", NO_PROBLEM)
        for kind, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            self.problem.addItem(f"{KIND_LABELS.get(kind, kind)} ({n})", kind)
        found = self.problem.findData(chosen)
        if found < 0 and chosen:  # the last row of that kind was fixed: keep the filter, shown empty
            self.problem.addItem(f"{KIND_LABELS.get(chosen, chosen)} (0)", chosen)
            found = self.problem.count() - 1
        self.problem.setCurrentIndex(max(found, 0))
        self.problem.blockSignals(False)

    def set_lengths_known(self, known: bool) -> None:
        for widget in (self.min_tokens, self.max_tokens, self.sort):
            if not hasattr(widget, "own_tip"):
                widget.own_tip = widget.toolTip()
            widget.setEnabled(known)
            widget.setToolTip(
                widget.own_tip
                if known
                else "Token lengths appear once the base model's tokenizer has measured every row"
            )

    def clear_filters(self) -> None:
        for widget in (self.find, self.problem, self.min_tokens, self.max_tokens, self.sort):
            widget.blockSignals(True)
        self.find.clear()
        self.problem.setCurrentIndex(0)
        self.min_tokens.setValue(0)
        self.max_tokens.setValue(0)
        self.sort.setCurrentIndex(0)
        for widget in (self.find, self.problem, self.min_tokens, self.max_tokens, self.sort):
            widget.blockSignals(False)
        self._emit_filter()

    def current_filter(self) -> RowFilter:
        return RowFilter(
            self.find.text().strip(),
            self.problem.currentData() or "",
            self.min_tokens.value(),
            self.max_tokens.value(),
            self.sort.currentData() or "file",
        )

    def _emit_filter(self, *_args) -> None:
        self.filter_changed.emit(self.current_filter())
