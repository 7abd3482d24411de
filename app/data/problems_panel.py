"""The problems of an open dataset: one line per issue, a click selects its row, one-click fixes."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from engine.data.review import FIXES, KIND_LABELS

_COLOURS = {"error": QColor("#c0392b"), "warning": QColor("#b9770e")}


class _ProblemsModel(QAbstractTableModel):
    HEADERS = ("Row", "Problem", "Details")

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.entries: list[tuple[int, int, str, str, str]] = []  # position, id, kind, message, severity

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.entries)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else 3

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        position, _row_id, kind, message, severity = self.entries[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return (str(position + 1), KIND_LABELS.get(kind, kind), message)[index.column()]
        if role == Qt.ItemDataRole.ForegroundRole and index.column() == 1:
            return QBrush(_COLOURS[severity])
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == 2:
            return message
        return None

    def set_entries(self, entries: list) -> None:
        self.beginResetModel()
        self.entries = entries
        self.endResetModel()


class ProblemsPanel(QWidget):
    row_chosen = Signal(int)  # row id
    fix_requested = Signal(object)  # the issue kinds one fix button stands for

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = _ProblemsModel(self)
        self.kind = QComboBox(self)
        self.kind.setToolTip("Show one kind of problem")
        self.kind.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.kind.currentIndexChanged.connect(self._on_kind_changed)
        self.summary = QLabel(self)
        self.fixes = QHBoxLayout()
        self.fixes.setSpacing(6)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(0, 70)
        self.table.setColumnWidth(1, 190)
        self.table.clicked.connect(self._on_clicked)
        self.table.activated.connect(self._on_clicked)
        top = QHBoxLayout()
        top.addWidget(self.summary)
        top.addStretch(1)
        top.addLayout(self.fixes)
        top.addWidget(self.kind)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.table)
        self._all: list = []
        self._buttons: list[QPushButton] = []

    def set_problems(self, entries: list, counts: dict[str, int], reviewing: bool = False) -> None:
        """entries: (position, row id, kind, message, severity), sorted by position."""
        self._all = entries
        chosen = self.kind.currentData()
        self.kind.blockSignals(True)
        self.kind.clear()
        self.kind.addItem(f"All problems ({len(entries)})", "")
        for kind, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            self.kind.addItem(f"{KIND_LABELS.get(kind, kind)} ({n})", kind)
        found = self.kind.findData(chosen)
        self.kind.setCurrentIndex(max(found, 0))
        self.kind.blockSignals(False)
        errors = sum(1 for e in entries if e[4] == "error")
        note = " · checking…" if reviewing else ""
        self.summary.setText(
            f"{errors} rows the trainer skips, {len(entries) - errors} warnings{note}"
            if entries
            else f"No problems found{note}"
        )
        self._fill_fixes(counts)
        self._on_kind_changed()

    def _fill_fixes(self, counts: dict[str, int]) -> None:
        for button in self._buttons:
            self.fixes.removeWidget(button)
            button.hide()
            button.deleteLater()
        self._buttons = []
        shown: set[str] = set()
        for kind, (_fix, label, tip) in FIXES.items():
            if counts.get(kind) and label not in shown:
                shown.add(label)
                n = sum(counts.get(k, 0) for k, (_f, other, _t) in FIXES.items() if other == label)
                button = QPushButton(f"{label} ({n})", self)
                button.setToolTip(
                    f"{tip}. Applies to every row with this problem; Undo (Ctrl+Z) takes it back."
                )
                button.clicked.connect(lambda _c=False, k=kind: self._on_fix(k))
                self.fixes.addWidget(button)
                self._buttons.append(button)

    def _on_fix(self, kind: str) -> None:
        label = FIXES[kind][1]  # one button may stand for several kinds (empty reply, empty text)
        self.fix_requested.emit([k for k, (_f, other, _t) in FIXES.items() if other == label])

    def _on_kind_changed(self, _index: int = 0) -> None:
        kind = self.kind.currentData()
        self.model.set_entries([e for e in self._all if e[2] == kind] if kind else self._all)

    def _on_clicked(self, index: QModelIndex) -> None:
        if index.isValid():
            self.row_chosen.emit(self.model.entries[index.row()][1])
