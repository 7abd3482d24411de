"""The project's saved conversations (engine.chat.store): newest first; pick one to reopen it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.chat.store import delete_conversation, list_conversations


class ChatHistory(QWidget):
    chosen = Signal(str)  # conversation id
    new_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project_dir: Path | None = None
        self.list = QListWidget(self)
        self.list.setToolTip("Saved conversations of this project (saved after every reply)")
        self.new_button = QPushButton("New chat", self)
        self.delete_button = QPushButton("Delete", self)
        self.delete_button.setToolTip("Delete the selected conversation from the project")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.new_button)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.delete_button)
        self.new_button.clicked.connect(self.new_requested)
        self.delete_button.clicked.connect(self._on_delete)
        self.list.itemClicked.connect(self._on_clicked)

    def show_project(self, project_dir: Path | None) -> None:
        self.project_dir = project_dir
        self.refresh()

    def refresh(self, select: str | None = None) -> None:
        self.list.clear()
        for summary in list_conversations(self.project_dir) if self.project_dir else []:
            when = summary.updated[:16].replace("T", " ")
            label = (
                f"{summary.title or 'New chat'}\n{when} · {summary.message_count} messages"
                if not summary.problem
                else f"{summary.path.name}\ncannot be read: {summary.problem}"
            )
            item = QListWidgetItem(label)
            item.setData(Qt.ItemDataRole.UserRole, None if summary.problem else summary.id)
            item.setToolTip(summary.problem or summary.title)
            self.list.addItem(item)
            if select and summary.id == select:
                self.list.setCurrentItem(item)
        self.delete_button.setEnabled(self.list.count() > 0)

    def confirm_delete(self, title: str) -> bool:
        answer = QMessageBox.question(self, "Delete conversation", f"Delete “{title}” from this project?")
        return answer == QMessageBox.StandardButton.Yes

    def _on_clicked(self, item: QListWidgetItem) -> None:
        conv_id = item.data(Qt.ItemDataRole.UserRole)
        if conv_id:
            self.chosen.emit(conv_id)

    def _on_delete(self) -> None:
        item = self.list.currentItem()
        conv_id = item.data(Qt.ItemDataRole.UserRole) if item else None
        if conv_id and self.project_dir and self.confirm_delete(item.text().splitlines()[0]):
            delete_conversation(self.project_dir, conv_id)
            self.refresh()
