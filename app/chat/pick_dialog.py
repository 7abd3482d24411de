"""Keeping a chat verdict (a pair, or a rated reply) as a preference row: which dataset, and the row itself.

Like "Add to dataset", it shows the exact record before anything is written. The record depends on
the dataset's shape, so it is rebuilt for each dataset picked; one of another shape shows the
DataError's message instead, and "Add" stays off. A pair's better reply can be corrected first (Edit).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.data.shapes import Shape, detect_shape
from engine.errors import UserError


class PickDialog(QDialog):
    """`build(shape, reply)` makes the record; `shape_of(path)` reads a dataset's shape (DataError if none).

    `reply` is the reply being kept (a pair's better reply: editable); `new_name`/`new_columns` name
    the dataset created when none fits.
    """

    def __init__(
        self,
        title: str,
        build: Callable[[Shape, str], dict],
        reply: str,
        datasets: list[Path],
        new_path: Path,
        new_columns: list[str],
        shape_of: Callable[[Path], Shape],
        note: str = "",
        editable: bool = False,
        add_text: str = "Add row",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self._build, self._shape_of, self.new_columns = build, shape_of, new_columns
        self.new_path = new_path
        self._shapes: dict[Path, Shape | UserError] = {}
        self.note = note
        self.target = QComboBox(self)
        for path in datasets:
            if path.suffix.lower() in (".jsonl", ".ndjson", ".parquet"):
                self.target.addItem(path.name, str(path))
        if self.target.findText(new_path.name) < 0:
            self.target.addItem(f"{new_path.name} (new)", str(new_path))
        self.reply = QPlainTextEdit(reply, self)
        self.reply.setReadOnly(True)
        self.reply.setMaximumHeight(110)
        self.edit_button = QPushButton("Edit", self)
        self.edit_button.setToolTip("Correct the better reply before keeping it; the chat is not changed")
        self.preview = QPlainTextEdit(self)
        self.preview.setReadOnly(True)
        self.preview.setPlaceholderText("No row for this dataset: see why above.")
        self.problem = QLabel(self, objectName="problem")
        self.problem.setWordWrap(True)
        bold = self.problem.font()
        bold.setBold(True)
        self.problem.setFont(bold)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.add_button = self.buttons.addButton(add_text, QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Dataset", self))
        layout.addWidget(self.target)
        layout.addWidget(self.problem)
        if editable:
            header = QHBoxLayout()
            header.addWidget(QLabel("Better reply (chosen)", self), 1)
            header.addWidget(self.edit_button)
            layout.addLayout(header)
            layout.addWidget(self.reply)
        else:
            self.reply.hide()
            self.edit_button.hide()
        layout.addWidget(QLabel("The row that will be added", self))
        layout.addWidget(self.preview, 1)
        if note:
            remark = QLabel(note, self)
            remark.setWordWrap(True)
            layout.addWidget(remark)
        layout.addWidget(self.buttons)
        self.resize(600, 520 if editable else 420)

        self.edit_button.clicked.connect(self.start_editing)
        self.reply.textChanged.connect(self._update)
        self.target.currentIndexChanged.connect(self._update)
        self.target.setCurrentIndex(self._first_fitting())
        self._update()

    def chosen(self) -> Path:
        return Path(self.target.currentData())

    def reply_text(self) -> str:
        return self.reply.toPlainText()

    def start_editing(self) -> None:
        self.reply.setReadOnly(False)
        self.reply.setFocus()
        self.edit_button.setEnabled(False)

    def shape(self, path: Path) -> Shape:
        """The dataset's shape (read once per dialog); a dataset not there yet gets the new one's."""
        if path not in self._shapes:
            try:
                self._shapes[path] = self._shape_of(path) if path.exists() else detect_shape(self.new_columns)
            except UserError as exc:
                self._shapes[path] = exc
        found = self._shapes[path]
        if isinstance(found, UserError):
            raise found
        return found

    def record(self) -> dict:
        """The exact record for the chosen dataset; UserError saying why there is none."""
        return self._build(self.shape(self.chosen()), self.reply_text())

    def _first_fitting(self) -> int:
        """The first dataset this row fits (else the new one): the user rarely has to pick."""
        for index in range(self.target.count()):
            try:
                self._build(self.shape(Path(self.target.itemData(index))), self.reply_text())
            except UserError:
                continue
            return index
        return self.target.count() - 1

    def _way_out(self) -> str:
        """When the row would fit a new dataset (the picked one has another shape), say how to make it."""
        index = self.target.findData(str(self.new_path))
        if index < 0 or index == self.target.currentIndex():
            return ""
        try:
            self._build(self.shape(self.new_path), self.reply_text())
        except UserError:
            return ""
        how = "instead" if self.new_path.exists() else "to start one"
        return f' Choose "{self.target.itemText(index)}" {how}.'

    def _update(self, *_args) -> None:
        try:
            record = self.record()
        except UserError as exc:
            self.preview.setPlainText("")
            self.problem.setText(f"{exc.message} {exc.hint}{self._way_out()}".strip())
            self.problem.show()
            self.add_button.setEnabled(False)
            return
        self.preview.setPlainText(json.dumps(record, ensure_ascii=False, indent=2))
        self.problem.hide()
        self.add_button.setEnabled(True)
