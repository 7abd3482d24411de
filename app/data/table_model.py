"""The rows of an open dataset as a virtual table: only the rows on screen are ever decoded.

The model shows `view`, an array of row ids (the file order, or a filtered/sorted subset that
app.data.row_filter computes); `data()` decodes a row from the Arrow table when Qt asks for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont

from app.data.document import DatasetDocument
from engine.data.review import KIND_LABELS
from engine.data.row_store import BROKEN

PREVIEW_CHARS = 160
_ROLE_KEY = {"messages": ("role", "content"), "sharegpt": ("from", "value")}
_FIELD_COLUMNS = {
    "alpaca": (("Instruction", "instruction"), ("Output", "output")),
    "prompt_completion": (("Prompt", "prompt"), ("Completion", "completion")),
    "preference": (("Prompt", "prompt"), ("Chosen", "chosen"), ("Rejected", "rejected")),
    "kto": (("Prompt", "prompt"), ("Completion", "completion"), ("Label", "label")),
    "text": (("Text", "text"),),
}
_ERROR, _WARNING = QColor("#c0392b"), QColor("#b9770e")


def one_line(value: Any) -> str:
    text = value if isinstance(value, str) else ("" if value is None else repr(value))
    text = " ".join(text[: PREVIEW_CHARS * 2].split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _shown(value: Any, field: str) -> Any:
    """What a cell of a preference row shows: the last message of a prompt given as messages (the
    user's question), the text of an answer given as one assistant message, a label as good/bad."""
    if field == "label" and isinstance(value, bool):
        return "good" if value else "bad"
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        return value[-1].get("content")
    return value


class DatasetTableModel(QAbstractTableModel):
    def __init__(self, document: DatasetDocument, parent=None) -> None:
        super().__init__(parent)
        self.document = document
        self.view = document.store.order.copy()
        shape = document.shape
        if shape.name in _ROLE_KEY:
            self.headers = ["Row", "Turns", "First prompt", "Last reply", "Tokens", "Problem"]
        else:
            self.headers = ["Row", *(title for title, _f in _FIELD_COLUMNS[shape.name]), "Tokens", "Problem"]
        self._italic = QFont()
        self._italic.setItalic(True)
        self._right = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        roles = Qt.ItemDataRole
        self._roles = {
            roles.DisplayRole: self._text,
            roles.EditRole: self._edit_text,
            roles.ForegroundRole: self._foreground,
            roles.FontRole: self._font,
            roles.ToolTipRole: self._tooltip,
            roles.TextAlignmentRole: self._alignment,
        }
        self._roles.update({int(role): handler for role, handler in list(self._roles.items())})
        # A label is a bool: the row editor's toggle edits it.
        self._editable = {"First prompt", "Last reply"} | {
            t for cols in _FIELD_COLUMNS.values() for t, _f in cols if t != "Label"
        }

    # -- Qt model API -------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.view)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.headers)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.headers[section]
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        # Called ~1000 times per paint: one dict lookup sends each role to its handler, or to None.
        handler = self._roles.get(role)
        if handler is None or not index.isValid():
            return None
        return handler(int(self.view[index.row()]), self.headers[index.column()])

    def _foreground(self, row_id: int, column: str):
        if column == "Problem":
            issues = self.document.issues_of(row_id)
            if issues:
                return QBrush(_ERROR if any(i.severity == "error" for i in issues) else _WARNING)
        return None

    def _font(self, row_id: int, column: str):
        return self._italic if column == "Row" and self.document.store.is_edited(row_id) else None

    def _tooltip(self, row_id: int, column: str):
        if column == "Problem":
            return "\n".join(i.message for i in self.document.issues_of(row_id)) or None
        if column == "Row" and self.document.store.is_edited(row_id):
            return "Edited since the last save"
        return None

    def _alignment(self, _row_id: int, column: str):
        return self._right if column in ("Row", "Turns", "Tokens") else None

    # -- editing in place: the text columns of simple shapes, and the first prompt / last reply --
    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        # Cheap on purpose (asked for every cell on every paint); the view's delegate declines to
        # edit a cell whose text is missing or spans lines (that is the row editor's job).
        flags = super().flags(index)
        if index.isValid() and self.headers[index.column()] in self._editable:
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def _field_path(self, row_id: int, column: str) -> tuple | None:
        """(container key path) of the text a column shows, when the row has it as text."""
        shape, record = self.document.shape, self.document.store.peek(row_id)
        if BROKEN in record:
            return None
        if shape.name in _ROLE_KEY:
            if column not in ("First prompt", "Last reply"):
                return None
            role_key, content_key = _ROLE_KEY[shape.name]
            field = "messages" if shape.name == "messages" else "conversations"
            key = shape.columns.get(field, field)
            turns = record.get(key)
            if not isinstance(turns, list):
                return None
            wanted = ("user", "human") if column == "First prompt" else ("assistant", "gpt", "model", "bot")
            hits = [
                i
                for i, t in enumerate(turns)
                if isinstance(t, dict) and str(t.get(role_key, "")).lower() in wanted
            ]
            if not hits or not isinstance(
                turns[hits[0 if column == "First prompt" else -1]].get(content_key), str
            ):
                return None
            return (key, hits[0 if column == "First prompt" else -1], content_key)
        for title, field in _FIELD_COLUMNS[shape.name]:
            key = shape.columns.get(field, field)
            if title == column and isinstance(record.get(key, ""), str):
                return (key,)
        return None

    def setData(
        self, index: QModelIndex | QPersistentModelIndex, value, role: int = Qt.ItemDataRole.EditRole
    ) -> bool:  # noqa: N802
        if role != Qt.ItemDataRole.EditRole or not index.isValid():
            return False
        row_id = int(self.view[index.row()])
        path = self._field_path(row_id, self.headers[index.column()])
        if path is None:
            return False
        record = self.document.store.record(row_id)
        holder = record
        for key in path[:-1]:
            holder = holder[key]
        if holder.get(path[-1]) == value:
            return False
        holder[path[-1]] = value
        position = self.document.store.position(row_id)
        self.document.set_records([row_id], [record], f"Edit row {position + 1}")
        return True

    def _edit_text(self, row_id: int, column: str) -> str | None:
        path = self._field_path(row_id, column)
        if path is None:
            return None
        value = self.document.store.peek(row_id)
        for key in path:
            value = value[key] if not isinstance(value, dict) or key in value else ""
        return value

    # -- cells ------------------------------------------------------------------------------------
    def _text(self, row_id: int, column: str) -> str:
        store = self.document.store
        if column == "Row":
            mark = "*" if store.is_edited(row_id) else ""
            return f"{store.position(row_id) + 1}{mark}"
        if column == "Tokens":
            lengths = self.document.review.lengths
            return str(int(lengths[row_id])) if row_id < len(lengths) and lengths[row_id] >= 0 else ""
        if column == "Problem":
            issues = self.document.issues_of(row_id)
            if not issues:
                return ""
            more = f" (+{len(issues) - 1})" if len(issues) > 1 else ""
            return KIND_LABELS.get(issues[0].kind, issues[0].kind) + more
        record = store.peek(row_id)
        if BROKEN in record:
            return (
                one_line(record[BROKEN])
                if column in ("First prompt", "Instruction", "Prompt", "Text")
                else ""
            )
        return self._preview(record, column)

    def _preview(self, record: dict[str, Any], column: str) -> str:
        shape = self.document.shape
        if shape.name in _ROLE_KEY:
            role_key, content_key = _ROLE_KEY[shape.name]
            field = "messages" if shape.name == "messages" else "conversations"
            turns = record.get(shape.columns.get(field, field))
            if not isinstance(turns, list):
                return ""
            if column == "Turns":
                return str(len(turns))
            turns = [t for t in turns if isinstance(t, dict)]
            wanted = ("user", "human") if column == "First prompt" else ("assistant", "gpt", "model", "bot")
            picked = [t for t in turns if str(t.get(role_key, "")).lower() in wanted]
            if not picked:
                return ""
            return one_line((picked[0] if column == "First prompt" else picked[-1]).get(content_key))
        for title, field in _FIELD_COLUMNS[shape.name]:
            if title == column:
                value = record.get(shape.columns.get(field, field))
                return one_line(_shown(value, field) if shape.name in ("preference", "kto") else value)
        return ""

    # -- the view ------------------------------------------------------------------------------
    def set_view(self, ids: np.ndarray) -> None:
        self.beginResetModel()
        self.view = ids
        self.endResetModel()

    def row_of(self, row_id: int) -> int | None:
        hits = np.flatnonzero(self.view == row_id)
        return int(hits[0]) if len(hits) else None

    def id_at(self, row: int) -> int:
        return int(self.view[row])

    def refresh_rows(self, ids: list[int]) -> None:
        wanted = np.isin(self.view, np.asarray(ids, dtype=np.int64))
        for row in np.flatnonzero(wanted)[:2000].tolist():
            self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.headers) - 1))

    def refresh_all(self) -> None:
        if len(self.view):
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.view) - 1, len(self.headers) - 1))
