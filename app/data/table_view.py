"""The table of rows (or a message while nothing is open), selection by row id."""

from __future__ import annotations

from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QStackedWidget,
    QStyledItemDelegate,
    QTableView,
)

from app.data.table_model import DatasetTableModel

_WIDTHS = {"Row": 72, "Turns": 50, "Tokens": 64, "Problem": 170}


class _OneLineDelegate(QStyledItemDelegate):
    """Edits a cell in place only when its text is one line (the row editor takes the rest)."""

    def createEditor(self, parent, option, index):  # noqa: N802 - Qt's name
        text = index.data(Qt.ItemDataRole.EditRole)
        if not isinstance(text, str) or "\n" in text:
            return None
        return super().createEditor(parent, option, index)


class DatasetView(QStackedWidget):
    current_row_changed = Signal(object)  # row id, or None

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.table = QTableView(self)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setWordWrap(False)
        self.table.setAlternatingRowColors(True)
        self.table.setItemDelegate(_OneLineDelegate(self.table))
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.SelectedClicked
        )
        header = self.table.verticalHeader()
        header.hide()
        header.setSectionResizeMode(
            QHeaderView.ResizeMode.Fixed
        )  # no per-row measuring: a million rows scroll freely
        header.setDefaultSectionSize(24)
        self.table.horizontalHeader().setHighlightSections(False)
        self.message = QLabel(self)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.addWidget(self.message)
        self.addWidget(self.table)
        self.model: DatasetTableModel | None = None

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.setCurrentWidget(self.message)

    def set_model(self, model: DatasetTableModel | None) -> None:
        self.model = model
        self.table.setModel(model)
        if model is None:
            self.show_message("")
            return
        header = self.table.horizontalHeader()
        for column, title in enumerate(model.headers):
            if title in _WIDTHS:
                header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
                self.table.setColumnWidth(column, _WIDTHS[title])
            else:
                header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_changed)
        model.modelReset.connect(self._on_reset)
        self.setCurrentWidget(self.table)

    def _on_current_changed(self, current, _previous) -> None:
        self.current_row_changed.emit(self.model.id_at(current.row()) if current.isValid() else None)

    def _on_reset(self) -> None:
        self.current_row_changed.emit(None)

    # ---- selection by row id ----------------------------------------------------------------
    def current_id(self) -> int | None:
        if self.model is None:
            return None
        index = self.table.currentIndex()
        return (
            self.model.id_at(index.row()) if index.isValid() and index.row() < self.model.rowCount() else None
        )

    def selected_ids(self) -> list[int]:
        if self.model is None:
            return []
        rows = {index.row() for index in self.table.selectionModel().selectedRows()}
        if not rows and self.table.currentIndex().isValid():
            rows = {self.table.currentIndex().row()}
        return [self.model.id_at(r) for r in sorted(rows)]

    def select_id(self, row_id: int) -> None:
        if self.model is None:
            return
        row = self.model.row_of(row_id)
        if row is None:
            return
        index = self.model.index(row, 0)
        selection = QItemSelection(index, self.model.index(row, self.model.columnCount() - 1))
        self.table.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.NoUpdate)
        self.table.selectionModel().select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self.table.scrollTo(index, QAbstractItemView.ScrollHint.EnsureVisible)
        self.current_row_changed.emit(row_id)

    def select_first(self) -> None:
        if self.model is not None and self.model.rowCount():
            self.select_id(self.model.id_at(0))

    def id_after(self, ids: list[int]) -> int | None:
        """The row to select after deleting `ids`: the first one below them, else above."""
        if self.model is None:
            return None
        rows = sorted(r for r in (self.model.row_of(i) for i in ids) if r is not None)
        if not rows:
            return None
        gone = set(rows)
        for row in list(range(rows[-1] + 1, self.model.rowCount())) + list(range(rows[0] - 1, -1, -1)):
            if row not in gone:
                return self.model.id_at(row)
        return None
