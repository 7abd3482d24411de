"""The buttons under a finished reply that turn it into preference data.

Compare mode: one "Left is better" / "Right is better" button per reply (the reply it sits under
is the better one of its pair). Single mode: a thumbs up and a thumbs down (a rated reply, KTO).
A reply already kept says where, beside the buttons (picking it again would add a second row).
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

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
        self.kept = QLabel(objectName="kept")
        self.kept.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.kept.setWordWrap(True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addWidget(self.kept, 1)  # takes the room when shown (long dataset names wrap less)
        layout.addStretch(0)  # keeps the buttons on the right when it is hidden
        for button, verdict in ((self.better, "better"), (self.good, "good"), (self.bad, "bad")):
            button.clicked.connect(lambda _checked=False, v=verdict: self.chosen.emit(v))
            layout.addWidget(button)
        self.set_mode(None)

    def set_mode(self, mode: str | None, label: str = "", kept: str = "") -> None:
        """None (no buttons), "pair" (one button saying which side is better) or "rate" (up and down);
        `kept`: where this reply was kept already, shown beside the buttons."""
        self.kept.setText(f"\u2713 {kept}" if kept else "")
        self.kept.setVisible(bool(kept))
        self.better.setText(label)
        self.better.setToolTip(
            f"{label}: keep this pair (this reply chosen, the other side's rejected) as a preference row "
            "for DPO or ORPO; you see the row, and can correct this reply, before it is added"
        )
        self.better.setVisible(mode == "pair")
        self.good.setVisible(mode == "rate")
        self.bad.setVisible(mode == "rate")
        self.setVisible(mode is not None)
