"""What to do with a finished run, shown above its monitor: chat with it, export it.

The bar only emits signals; the shell routes them (the Chat tab, the export dialog). More
steps join through `add_step` — e.g. "Evaluate" once the evaluation feature exists — so
the bar never shows a button that does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

# States whose run has a result worth trying (its adapter, or the checkpoint it stopped at).
FINISHED = ("done", "stopped", "paused")
HEADLINES = {
    "done": "<b>✓ Training is done.</b> Try the result:",
    "stopped": "<b>Stopped.</b> Try it as far as it got (its last checkpoint):",
    "paused": "<b>Paused.</b> Try it as far as it got (its last checkpoint):",
}


class RunNextSteps(QFrame):
    chatRequested = Signal(Path)  # run folder: chat with it against the base model
    exportRequested = Signal(Path)  # run folder: the export dialog for it

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("runNextSteps")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.run_dir: Path | None = None
        self.headline = QLabel(self)
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(8, 4, 8, 4)
        self._row.addWidget(self.headline)
        self._row.addStretch(1)
        self.buttons: dict[str, QPushButton] = {}
        self.chat_button = self.add_step(
            "Chat with it",
            "Open the Chat tab with this run's adapter side by side with the base model",
            self.chatRequested.emit,
        )
        self.export_button = self.add_step(
            "Export…",
            "Write a merged model or a GGUF file (+ Ollama Modelfile) from this run",
            self.exportRequested.emit,
        )
        self.hide()

    def add_step(self, text: str, tip: str, slot: Callable[[Path], object]) -> QPushButton:
        """A button that calls `slot(run folder)`; the extension point for later steps (Evaluate)."""
        button = QPushButton(text, self)
        button.setToolTip(tip)
        button.clicked.connect(lambda _checked=False: self.run_dir is not None and slot(self.run_dir))
        self._row.addWidget(button)
        self.buttons[text] = button
        return button

    def show_for(self, run_dir: Path | None, state: str, has_result: bool) -> None:
        """Visible for a finished run with an adapter or a checkpoint;
        hidden otherwise (and while it trains)."""
        self.run_dir = Path(run_dir) if run_dir is not None else None
        visible = self.run_dir is not None and state in FINISHED and has_result
        if visible:
            self.headline.setText(HEADLINES[state])
        self.setVisible(visible)
