"""A table model over the model library's `ModelInfo` records (one row per model)."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt

from engine.models.info import SOURCE_LABELS, format_count, status_text
from engine.util.units import format_size

COLUMNS = (
    "Name",
    "Source",
    "Architecture",
    "Parameters",
    "Context",
    "Chat template",
    "4-bit memory",
    "Status",
)
SORT_ROLE = Qt.ItemDataRole.UserRole + 10


class LibraryTableModel(QAbstractTableModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.models: list = []

    def set_models(self, models: list) -> None:
        self.beginResetModel()
        self.models = list(models)
        self.endResetModel()

    def info(self, row: int):
        return self.models[row] if 0 <= row < len(self.models) else None

    def row_of(self, path) -> int:
        return next((i for i, m in enumerate(self.models) if str(m.path) == str(path)), -1)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 (Qt signature)
        return 0 if parent.isValid() else len(self.models)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        info = self.info(index.row())
        if info is None:
            return None
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (
                info.name,
                SOURCE_LABELS.get(info.source, info.source),
                info.architecture or "?",
                format_count(info.parameters),
                f"{info.context_length:,}" if info.context_length else "?",
                "yes" if info.has_chat_template else "no",
                format_size(info.memory_4bit_bytes),
                status_text(info),
            )[col]
        if role == SORT_ROLE:
            return (
                info.name.casefold(),
                info.source,
                info.architecture or "",
                info.parameters or 0,
                info.context_length or 0,
                info.has_chat_template,
                info.memory_4bit_bytes or 0,
                status_text(info),
            )[col]
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = str(info.path)
            if info.problem:
                tip += f"\n{info.problem}" + (f"\n{info.hint}" if info.hint else "")
            return tip
        if role == Qt.ItemDataRole.ForegroundRole and (info.problem or not info.usable):
            return Qt.GlobalColor.darkRed if info.problem else Qt.GlobalColor.darkYellow
        return None
