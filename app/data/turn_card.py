"""Text boxes and turn cards of the row editor: they show raw values and give back what to store.

A box remembers the value it was given: while its text is unchanged it gives that value back
as it was (a missing key stays missing, a list stays a list), so showing a row and committing
without typing never rewrites the user's data.
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import QSignalBlocker, Signal
from PySide6.QtGui import QFocusEvent, QPalette, QResizeEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

MISSING: Any = object()  # a key absent from the record
MAX_BOX_HEIGHT = 300


def shown_text(value: Any) -> str:
    if value is MISSING or value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class TextBox(QPlainTextEdit):
    """A plain-text box that grows with its text up to MAX_BOX_HEIGHT, then scrolls."""

    focusLost = Signal()

    def __init__(self, value: Any = MISSING, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTabChangesFocus(True)  # Tab moves through the form, as in any other field
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().documentLayout().documentSizeChanged.connect(self._on_size_changed)
        self._original: Any = MISSING  # the stored value, given back while the text is unchanged
        self._initial = ""
        self.wrong_type = False
        self.load(value)

    def load(self, value: Any) -> None:
        """Show a stored value (boxes are reused from row to row: building them is the slow part)."""
        self._original = value
        self._initial = shown_text(value)
        self.wrong_type = not (value is MISSING or value is None or isinstance(value, str))
        self.setPlainText(self._initial)
        self._fit()

    def value(self) -> Any:
        """What to store: the original value while the text is unchanged, else the text."""
        text = self.toPlainText()
        return self._original if text == self._initial else text

    def is_unchanged(self) -> bool:
        return self.toPlainText() == self._initial

    def _fit(self) -> None:
        # Before the first layout the document height is its block count; wrapping refines it.
        lines = max(2.0, self.document().size().height())
        frame = self.frameWidth() * 2 + int(self.document().documentMargin() * 2) + 2
        self.setFixedHeight(min(MAX_BOX_HEIGHT, int(lines * self.fontMetrics().lineSpacing()) + frame))

    def _on_size_changed(self, _size) -> None:
        self._fit()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width():
            self._fit()

    def focusOutEvent(self, event: QFocusEvent) -> None:
        super().focusOutEvent(event)
        self.focusLost.emit()


class FieldBox(QWidget):
    """A TextBox with a warning above it when the stored value is not text."""

    def __init__(self, value: Any = MISSING, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)
        self.edit = TextBox()
        self._layout.addWidget(self.edit)
        self.edit.textChanged.connect(self._on_text_changed)
        self.warning: QLabel | None = None  # made only when needed: most values are text
        self.load(value)

    def load(self, value: Any) -> None:
        self.edit.load(value)
        if self.edit.wrong_type and self.warning is None:
            self.warning = QLabel()
            self.warning.setStyleSheet("color: #c77c00;")
            self.warning.setWordWrap(True)
            self._layout.insertWidget(0, self.warning)
        if self.warning is not None:
            kind = type(value).__name__
            self.warning.setText(f"⚠ Not text ({kind}): shown as JSON; an edit stores it as text.")
            self.warning.setVisible(self.edit.wrong_type)

    def value(self) -> Any:
        return self.edit.value()

    def _on_text_changed(self) -> None:
        if self.warning is not None:
            self.warning.setVisible(self.edit.wrong_type and self.edit.is_unchanged())


class TurnCard(QFrame):
    """One conversation turn: role, content, and buttons to move or remove it."""

    roleChanged = Signal()
    moveRequested = Signal(object, int)  # card, -1 up / +1 down
    removeRequested = Signal(object)

    def __init__(self, turn: Any, roles: tuple[str, ...], role_key: str, content_key: str) -> None:
        super().__init__()
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self._role_key, self._content_key = role_key, content_key
        self._roles: list[Any] = list(roles)
        self._standard = len(roles)
        self.role_combo = QComboBox()
        self.role_combo.addItems(list(roles))
        self.role_combo.currentIndexChanged.connect(self._on_role_changed)
        self.number = QLabel()
        self.number.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.up_button = self._tool("↑", "Move this turn up", lambda: self.moveRequested.emit(self, -1))
        self.down_button = self._tool("↓", "Move this turn down", lambda: self.moveRequested.emit(self, 1))
        self.remove_button = self._tool("✕", "Remove this turn", lambda: self.removeRequested.emit(self))
        header = QHBoxLayout()
        header.addWidget(self.role_combo)
        header.addWidget(self.number)
        header.addStretch(1)
        for button in (self.up_button, self.down_button, self.remove_button):
            header.addWidget(button)
        self.content = FieldBox()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 8)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addWidget(self.content)
        self._turn: Any = None  # the stored turn (kept whole: fields the card does not show survive edits)
        self.load(turn)

    def load(self, turn: Any) -> None:
        """Show another turn; a turn that is not an object is shown as JSON text."""
        self._turn = turn
        fields = turn if isinstance(turn, dict) else {}
        role = fields.get(self._role_key, MISSING)
        with QSignalBlocker(self.role_combo):
            while self.role_combo.count() > self._standard:
                self.role_combo.removeItem(self._standard)
            del self._roles[self._standard :]
            if role not in self._roles:  # keep an unknown or missing role as it is
                self._roles.append(role)
                self.role_combo.addItem("(no role)" if role is MISSING else shown_text(role))
            self.role_combo.setCurrentIndex(self._roles.index(role))
        self.content.load(fields.get(self._content_key, MISSING) if isinstance(turn, dict) else turn)

    def _tool(self, text: str, tip: str, slot) -> QToolButton:
        button = QToolButton()
        button.setText(text)
        button.setToolTip(tip)
        button.setAutoRaise(True)
        button.clicked.connect(slot)
        return button

    def role(self) -> Any:
        return self._roles[self.role_combo.currentIndex()]

    def turn(self) -> Any:
        """The turn as shown: the original object with role and content updated."""
        role, content = self.role(), self.content.value()
        if not isinstance(self._turn, dict):
            if role is MISSING and self.content.edit.is_unchanged():
                return self._turn
            content = self.content.edit.toPlainText()
        turn = dict(self._turn) if isinstance(self._turn, dict) else {}
        for key, value in ((self._role_key, role), (self._content_key, content)):
            if value is not MISSING:
                turn[key] = value
        return turn

    def set_position(self, index: int, count: int) -> None:
        self.number.setText(f"#{index + 1}")
        self.up_button.setEnabled(index > 0)
        self.down_button.setEnabled(index < count - 1)

    def _on_role_changed(self, _index: int) -> None:
        self.roleChanged.emit()
