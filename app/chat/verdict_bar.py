"""The buttons under a finished reply that turn it into preference data.

Compare mode: one "Left is better" / "Right is better" button per reply (the reply it sits under
is the better one of its pair). Single mode: a thumbs up and a thumbs down (a rated reply, KTO).
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QWidget

THUMBS_UP = "\u2713 Good reply"  # a check mark: the fonts of an offline desktop may have no emoji
THUMBS_DOWN = "\u2717 Bad reply"


class VerdictBar(QWidget):
    """Hidden until the chat says which verdicts this reply can get."""

    chosen = Signal(str)  # "better", "good" or "bad"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.better = QPushButton(self, objectName="better")
        self.good = QPushButton(THUMBS_UP, self, objectName="good")
        self.good.setToolTip(
            "Thumbs up: keep this reply as a good example in a dataset of rated replies (KTO)"
        )
        self.bad = QPushButton(THUMBS_DOWN, self, objectName="bad")
        self.bad.setToolTip(
            "Thumbs down: keep this reply as a bad example in a dataset of rated replies (KTO)"
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addStretch(1)
        for button, verdict in ((self.better, "better"), (self.good, "good"), (self.bad, "bad")):
            button.clicked.connect(lambda _checked=False, v=verdict: self.chosen.emit(v))
            layout.addWidget(button)
        self.set_mode(None)

    def set_mode(self, mode: str | None, label: str = "") -> None:
        """None (no buttons), "pair" (one button saying which side is better) or "rate" (up and down)."""
        self.better.setText(label)
        self.better.setToolTip(
            f"{label}: keep this pair (this reply chosen, the other side's rejected) as a preference row "
            "for DPO or ORPO; you see the row, and can correct this reply, before it is added"
        )
        self.better.setVisible(mode == "pair")
        self.good.setVisible(mode == "rate")
        self.bad.setVisible(mode == "rate")
        self.setVisible(mode is not None)
