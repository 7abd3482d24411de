"""The prompt-set grid: one row per prompt, its expected answer and scorer (editable), then each
model's reply, coloured passed/failed by the row's scorer as it is edited (engine.eval.scorers)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QComboBox, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from app.widgets.theme import BETTER_COLOR, WORSE_COLOR
from engine.chat.prompt_sets import edit_item, expected_text, parse_expected
from engine.eval.scorers import TEXT_SCORERS, score_reply
from engine.eval.sets import EvalItem

FIXED_COLUMNS = ("Prompt", "Expected", "Scorer")
EXPECTED, SCORER = 1, 2
NOT_RUN = "(not run since the prompt was added)"
_HAS_REPLY = Qt.ItemDataRole.UserRole


class PromptSetGrid(QTableWidget):
    summaryChanged = Signal(str)  # e.g. "Base model: 1 of 3 passed · run-1: 3 of 3 passed"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.items: list[EvalItem] = []
        self.setWordWrap(True)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.setToolTip(
            "Expected: the answer a reply must give (for json: a JSON Schema, or empty for any JSON). "
            "Scorer: how a reply is checked; replies that pass are green, those that fail red."
        )
        self.itemChanged.connect(self._on_cell_edited)

    def show_set(self, items: list[EvalItem], replies: dict[str, dict[str, str]]) -> None:
        """Rows for `items`; a column per model label (in the order given) with its reply per prompt."""
        self.items = list(items)
        self.blockSignals(True)
        try:
            self._fill(replies)
        finally:
            self.blockSignals(False)
        self._score()

    def _fill(self, replies: dict[str, dict[str, str]]) -> None:
        self.clear()
        if not self.items:
            self.setRowCount(0)
            self.setColumnCount(0)
            return
        self.setColumnCount(len(FIXED_COLUMNS) + len(replies))
        self.setHorizontalHeaderLabels([*FIXED_COLUMNS, *replies])
        self.setRowCount(len(self.items))
        read_only = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        for row, item in enumerate(self.items):
            prompt = QTableWidgetItem(item.prompt)
            prompt.setFlags(read_only)
            self.setItem(row, 0, prompt)
            self.setItem(row, EXPECTED, QTableWidgetItem(expected_text(item)))
            self.setCellWidget(row, SCORER, self._scorer_box(row, item))
            for column, answers in enumerate(replies.values(), start=len(FIXED_COLUMNS)):
                cell = QTableWidgetItem(answers.get(item.prompt, NOT_RUN))
                cell.setFlags(read_only)
                cell.setData(_HAS_REPLY, item.prompt in answers)
                cell.setToolTip(cell.text())
                self.setItem(row, column, cell)

    def _scorer_box(self, row: int, item: EvalItem) -> QComboBox:
        box = QComboBox(self)
        box.addItem("not scored", None)
        for scorer in (*TEXT_SCORERS, *(("choice",) if item.choices else ())):
            box.addItem(scorer, scorer)
        box.setCurrentIndex(max(0, box.findData(item.scorer)))
        box.currentIndexChanged.connect(lambda _index, row=row: self._on_scorer_chosen(row))
        return box

    def edited_item(self, row: int) -> EvalItem:
        """The row's item with the expected answer and scorer as edited; ValueError when not usable."""
        base = self.items[row]
        expected_cell, box = self.item(row, EXPECTED), self.cellWidget(row, SCORER)
        scorer = box.currentData() if box is not None else base.scorer
        text = expected_cell.text() if expected_cell is not None else expected_text(base)
        # Unchanged text keeps the file's value (a number stays a number, a schema an object).
        expected = base.expected if text == expected_text(base) else parse_expected(text, scorer)
        if scorer is None:
            expected = None  # "not scored": the answer is shown, not checked
        return edit_item(base, base.prompt, expected, scorer)

    def _on_scorer_chosen(self, row: int) -> None:
        if self.cellWidget(row, SCORER).currentData() is None:
            self.item(row, EXPECTED).setText("")  # not scored: no expected answer
        self._score()

    def _on_cell_edited(self, cell: QTableWidgetItem) -> None:
        if cell.column() != EXPECTED:
            return
        box = self.cellWidget(cell.row(), SCORER)
        if cell.text().strip() and box is not None and box.currentData() is None:
            box.setCurrentIndex(box.findData("exact"))  # an answer is there to be checked: the default scorer
        self._score()

    def _score(self) -> None:
        self.blockSignals(True)  # colours and tooltips are not edits
        try:
            summary = self._score_cells()
        finally:
            self.blockSignals(False)
        self.summaryChanged.emit(summary)

    def _score_cells(self) -> str:
        first = len(FIXED_COLUMNS)
        labels = [self.horizontalHeaderItem(c).text() for c in range(first, self.columnCount())]
        passed, scored = dict.fromkeys(labels, 0), dict.fromkeys(labels, 0)
        problems = []
        for row in range(self.rowCount()):
            try:
                item = self.edited_item(row)
            except ValueError as exc:
                item = None
                problems.append(f"prompt {row + 1}: {exc}")
            for column, label in enumerate(labels, start=first):
                cell = self.item(row, column)
                result = None
                if item is not None and item.scorer in TEXT_SCORERS and cell.data(_HAS_REPLY):
                    result = score_reply(item, cell.text())
                    scored[label] += 1
                    passed[label] += result
                colour = {True: BETTER_COLOR, False: WORSE_COLOR}.get(result)
                cell.setData(Qt.ItemDataRole.ForegroundRole, QBrush(QColor(colour)) if colour else None)
                verdict = {True: "Passed", False: "Failed"}.get(result)
                cell.setToolTip(f"{verdict} ({item.scorer}).\n\n{cell.text()}" if verdict else cell.text())
        parts = [f"{label}: {passed[label]} of {scored[label]} passed" for label in labels if scored[label]]
        return " · ".join(parts + problems)

    def reply_at(self, row: int, label: str) -> str:
        """The cell of a prompt and a model label."""
        for column in range(self.columnCount()):
            if self.horizontalHeaderItem(column).text() == label:
                return self.item(row, column).text()
        raise KeyError(label)
