"""The row editor's form for preference rows: the prompt, then chosen and rejected side by side
(a pair) or the completion with a good/bad toggle (KTO's rated reply).

Like every box of the editor (app.data.turn_card), each field gives back the stored value while
it is left alone, so showing a pair and committing without an edit never rewrites the user's data.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app.data.turn_card import MISSING, FieldBox, shown_text
from engine.data.json_safety import json_type

SIDE_TITLES = {
    "chosen": "chosen · the better answer",
    "rejected": "rejected · the worse answer",
    "completion": "completion",
}


def _one_message(value: Any) -> bool:
    """TRL's conversational form of an answer: a list holding one assistant message with text."""
    return (
        isinstance(value, list)
        and len(value) == 1
        and isinstance(value[0], dict)
        and value[0].get("role") == "assistant"
        and isinstance(value[0].get("content"), str)
    )


class AnswerBox(FieldBox):
    """An answer: a text, or one assistant message ([{"role": "assistant", ...}]) edited as its text."""

    def load(self, value: Any) -> None:
        self._stored = value
        self._message = value[0] if _one_message(value) else None
        super().load(value[0]["content"] if self._message is not None else value)

    def value(self) -> Any:
        if self._message is None:
            return super().value()
        if self.edit.is_unchanged():
            return self._stored
        return [{**self._message, "content": self.edit.toPlainText()}]


class LabelToggle(QWidget):
    """KTO's label as two radio buttons: Good (true) and Bad (false)."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._stored: Any = MISSING
        self.good = QRadioButton("Good answer (label true)")
        self.bad = QRadioButton("Bad answer (label false)")
        self.group = QButtonGroup(self)
        for button in (self.good, self.bad):
            self.group.addButton(button)
        self.good.setToolTip("KTO makes answers like this one more likely")
        self.bad.setToolTip("KTO makes answers like this one less likely")
        self.group.buttonClicked.connect(lambda _b: self.changed.emit())
        self.warning = QLabel()
        self.warning.setStyleSheet("color: #c77c00;")
        self.warning.setWordWrap(True)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(16)
        row.addWidget(self.good)
        row.addWidget(self.bad)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.warning)
        layout.addLayout(row)

    def load(self, value: Any) -> None:
        self._stored = value
        with QSignalBlocker(self.group):
            self.group.setExclusive(False)  # else the checked button cannot be unchecked
            self.good.setChecked(value is True)
            self.bad.setChecked(value is False)
            self.group.setExclusive(True)
        odd = not isinstance(value, bool)
        if odd:
            found = "missing" if value is MISSING or value is None else json_type(value)
            found += f" ({shown_text(value)})" if found != "missing" else ""
            self.warning.setText(f"⚠ The label is {found}, not true/false: choose Good or Bad.")
        self.warning.setVisible(odd)

    def value(self) -> Any:
        """True or False once chosen; the stored value (even one that is not a bool) until then."""
        if self.good.isChecked():
            return True
        if self.bad.isChecked():
            return False
        return self._stored


class PairForm(QWidget):
    """The fields of a preference ("preference") or rated ("kto") row.

    `fields` maps each standard field name to its box; when the prompt is a list of messages it has
    no box: the row editor puts its turn cards into `turns_layout`, before `add_button`.
    """

    def __init__(self, shape: str, columns: dict[str, str], prompt_turns: bool) -> None:
        super().__init__()
        self.fields: dict[str, Any] = {}
        self.turns_layout: QVBoxLayout | None = None
        self.add_button: QPushButton | None = None

        def name(field: str, title: str = "") -> str:  # the file's own column name, when it differs
            key = columns.get(field, field)
            return (title or field) + (f"  ({key})" if key != field else "")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._title(name("prompt", "prompt" + (" · messages" if prompt_turns else ""))))
        if prompt_turns:
            self.turns_layout = QVBoxLayout()
            self.turns_layout.setContentsMargins(0, 0, 0, 0)
            self.add_button = QPushButton("Add turn")
            self.add_button.setToolTip("Add a message to the prompt (it must end with the user's turn)")
            self.turns_layout.addWidget(self.add_button, 0, Qt.AlignmentFlag.AlignLeft)
            layout.addLayout(self.turns_layout)
        else:
            self.fields["prompt"] = FieldBox()
            layout.addWidget(self.fields["prompt"])
        if shape == "preference":
            sides = QGridLayout()  # side by side: titles on one row, boxes aligned below them
            sides.setContentsMargins(0, 6, 0, 0)
            for column, side in enumerate(("chosen", "rejected")):
                self.fields[side] = AnswerBox()
                sides.addWidget(self._title(name(side, SIDE_TITLES[side])), 0, column)
                sides.addWidget(self.fields[side], 1, column, Qt.AlignmentFlag.AlignTop)
                sides.setColumnStretch(column, 1)
            layout.addLayout(sides)
        else:
            self.fields["completion"] = AnswerBox()
            layout.addWidget(self._title(name("completion")))
            layout.addWidget(self.fields["completion"])
            self.fields["label"] = LabelToggle()
            layout.addWidget(self._title(name("label")))
            layout.addWidget(self.fields["label"])

    @staticmethod
    def _title(text: str) -> QLabel:
        title = QLabel(text)
        title.setStyleSheet("font-weight: bold;")
        return title

    def text_boxes(self) -> list[FieldBox]:
        return [box for box in self.fields.values() if isinstance(box, FieldBox)]


def prompt_is_turns(record: dict | None, columns: dict[str, str]) -> bool:
    """Whether a preference row's prompt is a list of messages (shown as turn cards)."""
    return isinstance(record, dict) and isinstance(record.get(columns.get("prompt", "prompt")), list)


__all__ = ["AnswerBox", "LabelToggle", "PairForm", "prompt_is_turns"]
