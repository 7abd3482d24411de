"""A combo box that a mouse wheel passing over it does not change.

In a long scrolling form (the run setup) the wheel scrolls the form; an unfocused combo box under the
pointer would otherwise take the wheel and silently change a setting (nf4 -> fp4). It takes the wheel
only once the user has clicked or tabbed into it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox


class ScrollSafeComboBox(QComboBox):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # no focus from the wheel itself

    def wheelEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self.hasFocus():
            super().wheelEvent(event)
        else:
            event.ignore()  # let the scroll area behind it scroll
