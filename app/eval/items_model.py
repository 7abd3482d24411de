"""The rows of the per-item view: an eval set's (or the forgetting probe's) items of one model,
each beside the base's answer to the same item, and the table model that shows them."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QColor

from app.eval.reports import FORGETTING
from app.widgets.theme import BETTER_COLOR, WORSE_COLOR

FORGETTING_SOURCE = "General ability (forgetting probe)"
FILTERS = ("All", "Got worse", "Got better", "Changed")
SHOWN_CHARS = 300  # of a cell; the view elides it further, the tooltip and the detail pane have it all
TIP_CHARS = 2000


@dataclass(frozen=True)
class ItemRow:
    index: int
    label: str  # "#3 · arithmetic"
    prompt: str
    expected: str
    base_answer: str
    base_passed: bool | None
    answer: str
    passed: bool | None
    changed: bool

    def matches(self, kind: str) -> bool:
        if kind == "Got worse":
            return self.base_passed is True and self.passed is False
        if kind == "Got better":
            return self.base_passed is False and self.passed is True
        if kind == "Changed":
            return self.changed
        return True


def _text(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _items(model: dict, source: str) -> list[dict]:
    entry = (
        (model.get("probes") or {}).get(FORGETTING)
        if source == FORGETTING_SOURCE
        else ((model.get("sets") or {}).get(source))
    )
    items = entry.get("items") if isinstance(entry, dict) else None
    return [i for i in items or [] if isinstance(i, dict)]


def build_rows(base: dict, model: dict, source: str) -> list[ItemRow]:
    """The items of `source` in `model`, each with the base's answer to the same item (by index)."""
    reference = {item.get("index"): item for item in _items(base, source)}
    rows = []
    for n, item in enumerate(_items(model, source)):
        index = item.get("index", n)
        before = reference.get(index, {})
        answer, base_answer = _text(item.get("answer")), _text(before.get("answer"))
        changed = item.get("changed")
        if not isinstance(changed, bool):
            changed = model is not base and answer.strip() != base_answer.strip()
        tag = " · ".join(t for t in (_text(item.get("name")), _text(item.get("category"))) if t)
        rows.append(
            ItemRow(
                index=index if isinstance(index, int) else n,
                label=f"#{(index if isinstance(index, int) else n) + 1}" + (f" · {tag}" if tag else ""),
                prompt=_text(item.get("prompt")),
                expected=_text(item.get("expected")),
                base_answer=base_answer,
                base_passed=before.get("passed"),
                answer=answer,
                passed=item.get("passed"),
                changed=changed,
            )
        )
    return rows


def _mark(passed: bool | None) -> str:
    return "✓" if passed is True else "✗" if passed is False else "—"


class ItemsModel(QAbstractTableModel):
    HEADERS = ["Item", "Prompt", "Expected", "Base answer", "", "Answer", ""]

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: list[ItemRow] = []
        self.headers = list(self.HEADERS)

    def set_rows(self, rows: list[ItemRow], base_label: str, model_label: str) -> None:
        self.beginResetModel()
        self.rows = rows
        self.headers[3], self.headers[5] = f"{base_label}: answer", f"{model_label}: answer"
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802, B008 (Qt override)
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802, B008 (Qt override)
        return 0 if parent.isValid() else len(self.headers)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row, column = self.rows[index.row()], index.column()
        full = (
            row.label,
            row.prompt,
            row.expected,
            row.base_answer,
            row.base_passed,
            row.answer,
            row.passed,
        )[column]
        if column in (4, 6):
            if role == Qt.ItemDataRole.DisplayRole:
                return _mark(full)
            if role == Qt.ItemDataRole.ForegroundRole and full is not None:
                return QColor(BETTER_COLOR if full else WORSE_COLOR)
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return int(Qt.AlignmentFlag.AlignCenter)
            if role == Qt.ItemDataRole.ToolTipRole:
                return {True: "Passed", False: "Failed"}.get(full, "Not scored")
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return " ".join(full[:SHOWN_CHARS].split())  # one line: newlines would cut the cell's text
        if role == Qt.ItemDataRole.ToolTipRole and full:
            tip = html.escape(full[:TIP_CHARS] + ("…" if len(full) > TIP_CHARS else ""))
            return f"<div style='white-space: pre-wrap'>{tip}</div>"
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.headers[section]
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.ToolTipRole
            and section in (4, 6)
        ):
            return "Passed (✓), failed (✗) or not scored (—)"
        return None
