"""Choosing the dataset a chat becomes a training row of, with a preview of that row."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from engine.chat.store import conversation_to_row

NEW_DATASET = "chat-rows.jsonl"


class AddToDatasetDialog(QDialog):
    def __init__(
        self, messages: list[dict], datasets: list[Path], folder: Path, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add to dataset")
        row = conversation_to_row(messages)  # DataError (no reply, empty reply) is the caller's to show
        self.target = QComboBox(self)
        for path in datasets:
            if path.suffix.lower() in (".jsonl", ".ndjson", ".parquet"):
                self.target.addItem(path.name, str(path))
        if self.target.findText(NEW_DATASET) < 0:
            self.target.addItem(f"{NEW_DATASET} (new)", str(folder / NEW_DATASET))
        preview = QPlainTextEdit(json.dumps(row, ensure_ascii=False, indent=2), self)
        preview.setReadOnly(True)
        note = QLabel(
            "This is the row that will be trained on. To correct the reply first, close this and use "
            "its Edit button in the chat.",
            self,
        )
        note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        buttons.addButton("Add row", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Dataset", self))
        layout.addWidget(self.target)
        layout.addWidget(preview, 1)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.resize(560, 420)

    def chosen(self) -> Path:
        return Path(self.target.currentData())
