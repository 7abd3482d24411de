"""Where the user writes the next message: Enter sends, Shift+Enter breaks the line, Esc stops.

While a reply is generating the Send button turns into Stop; the box stays editable so the
next message can be written meanwhile, but Enter does not send it until the reply is over.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QHBoxLayout, QPlainTextEdit, QPushButton, QSizePolicy, QWidget

PLACEHOLDER = "Write a message… (Enter sends, Shift+Enter starts a new line)"
MIN_LINES, MAX_LINES = 2, 8


class _Input(QPlainTextEdit):
    """A text box that reports Enter / Ctrl+Enter (send) and Esc (stop) instead of handling them."""

    submit = Signal()
    escape = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTabChangesFocus(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().documentLayout().documentSizeChanged.connect(self._on_size_changed)
        self._fit()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key, mods = event.key(), event.modifiers()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if mods & Qt.KeyboardModifier.ShiftModifier:
                self.insertPlainText("\n")
            else:  # plain Enter and Ctrl+Enter both send
                self.submit.emit()
            event.accept()
            return
        if key == Qt.Key.Key_Escape:
            self.escape.emit()
            event.accept()
            return
        super().keyPressEvent(event)

    def _fit(self) -> None:
        lines = min(MAX_LINES, max(MIN_LINES, int(self.document().size().height())))
        margins = self.frameWidth() * 2 + int(self.document().documentMargin() * 2) + 2
        self.setFixedHeight(lines * self.fontMetrics().lineSpacing() + margins)

    def _on_size_changed(self, _size) -> None:
        self._fit()


class ChatComposer(QWidget):
    """The message box and its Send / Stop button."""

    send = Signal(str)
    stop = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.busy = False
        self.input = _Input()
        self.input.setPlaceholderText(PLACEHOLDER)
        self.button = QPushButton("Send", objectName="send")
        self.button.setMinimumWidth(80)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.input, 1)
        layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignBottom)
        self.input.submit.connect(self._on_submit)
        self.input.escape.connect(self._on_escape)
        self.input.textChanged.connect(self._on_text_changed)
        self.button.clicked.connect(self._on_button_clicked)
        self._reason: str | None = None
        self._update_button()

    def text(self) -> str:
        return self.input.toPlainText()

    def set_busy(self, busy: bool) -> None:
        """While generating the button is Stop (Esc too); the box stays editable."""
        self.busy = busy
        self._update_button()

    def set_enabled_reason(self, reason: str | None) -> None:
        """None enables the composer; a reason disables it and shows why in the box."""
        self._reason = reason
        self.input.setEnabled(reason is None)
        self.input.setPlaceholderText(PLACEHOLDER if reason is None else reason)
        # Qt repaints a placeholder only when it appears or goes, not when its text changes: the box
        # kept saying "Choose a base model first" with the model chosen.
        self.input.viewport().update()
        self._update_button()

    def _update_button(self) -> None:
        if self.busy:
            self.button.setText("Stop")
            self.button.setToolTip("Stop the reply here (Esc)")
            self.button.setEnabled(True)
        else:
            self.button.setText("Send")
            self.button.setToolTip(self._reason or "Send the message (Enter)")
            self.button.setEnabled(self._reason is None and bool(self.text().strip()))

    def _send(self) -> None:
        text = self.text().strip()
        if self.busy or self._reason is not None or not text:
            return
        self.input.clear()
        self.send.emit(text)

    def _on_submit(self) -> None:
        self._send()

    def _on_escape(self) -> None:
        if self.busy:
            self.stop.emit()

    def _on_button_clicked(self) -> None:
        if self.busy:
            self.stop.emit()
        else:
            self._send()

    def _on_text_changed(self) -> None:
        if not self.busy:
            self._update_button()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape and self.busy:  # Esc with focus on the button
            self.stop.emit()
            event.accept()
            return
        super().keyPressEvent(event)
