"""One side of the Chat tab: a model (base, or base + an adapter) in its own chat-server process,
with its transcript. Compare mode shows two."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QLabel, QVBoxLayout, QWidget

from app.chat.client import ChatClient
from app.chat.transcript import ChatTranscript
from engine.util.files import format_size


class ChatSide(QWidget):
    """One model: an adapter choice, its server process and its transcript."""

    busy_changed = Signal()

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.client = ChatClient(self)
        self.adapter = QComboBox(self)
        self.adapter.setToolTip(
            "What to talk to: the base model alone, or with a run's adapter or checkpoint"
        )
        # Not as wide as its longest run name: both sides of a comparison get the same width.
        self.adapter.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.adapter.setMinimumContentsLength(16)
        self.state = QLabel("Not loaded", self)
        self.state.setWordWrap(True)
        self.transcript = ChatTranscript(title, self)
        self.reply_id: str | None = None
        self.loaded_key: tuple | None = None
        self.loaded_device = ""  # where the loaded model is, as the server said ("cuda", "cpu")
        self.loading = False
        self.picked = False  # the user chose this side's adapter: no default replaces it
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.adapter)
        layout.addWidget(self.state)
        layout.addWidget(self.transcript, 1)
        self.adapter.activated.connect(self._on_picked)
        self.client.loading.connect(self._on_loading)
        self.client.loaded.connect(self._on_loaded)
        self.client.unloaded.connect(self._on_unloaded)
        self.client.chunk.connect(self._on_chunk)
        self.client.done.connect(self._on_done)
        self.client.error.connect(self._on_error)
        self.client.ended.connect(self._on_ended)

    def _on_picked(self, _index: int) -> None:
        self.picked = True

    def in_use(self) -> bool:
        """Loading, replying or holding a conversation: its adapter is not changed behind the user's back."""
        return self.loading or self.generating() or bool(self.transcript.messages())

    def set_choices(self, choices: list[tuple[str, str | None]]) -> None:
        chosen = self.adapter.currentData()
        self.adapter.clear()
        for label, path in choices:
            self.adapter.addItem(label, path)
        found = self.adapter.findData(chosen)
        self.adapter.setCurrentIndex(max(found, 0))

    def generating(self) -> bool:
        return self.reply_id is not None

    def ready(self) -> bool:
        return self.loaded_key is not None and not self.loading

    # ---- requests ------------------------------------------------------------------------
    def load(self, model: str, device: str) -> None:
        key = (model, self.adapter.currentData(), device)
        if key == self.loaded_key or self.loading:
            return
        self.loading = True
        self.state.setText("Starting the model process…")
        self.client.load(model, key[1], device)
        self._key = key
        self.busy_changed.emit()

    def unload(self) -> None:
        if self.client.is_running():
            self.client.unload()

    def send(self, messages: list[dict], settings: dict) -> None:
        self.transcript.begin_reply()
        self.reply_id = self.client.generate(messages, settings)
        self.busy_changed.emit()

    def stop(self) -> None:
        if self.reply_id is not None:
            self.client.cancel(self.reply_id)

    # ---- events from the server process --------------------------------------------------
    def _on_loading(self, message: str) -> None:
        self.state.setText(message)

    def _on_loaded(self, info: dict) -> None:
        self.loading = False
        self.loaded_key = self._key
        self.loaded_device = str(info.get("device") or "")
        adapter = (
            self.adapter.itemText(max(self.adapter.findData(self._key[1]), 0))
            if info.get("adapter")
            else "no adapter"
        )
        memory = format_size(int(info.get("memory_bytes") or 0))
        self.state.setText(
            f"Loaded: {Path(info['model']).name} + {adapter} · {info.get('device', '?')} · "
            f"{memory} · {info.get('seconds', 0):.1f} s to load"
        )
        self.busy_changed.emit()

    def _on_unloaded(self) -> None:
        self.loaded_key = None
        self.state.setText("Unloaded: the model's memory is free.")
        self.busy_changed.emit()

    def _on_chunk(self, reply_id: str, text: str) -> None:
        if reply_id == self.reply_id:
            self.transcript.append_chunk(text)

    def _on_done(self, reply_id: str, text: str, stats: dict) -> None:
        if reply_id == self.reply_id:
            self.reply_id = None
            self.transcript.end_reply(text, stats)
            self.busy_changed.emit()

    def _on_error(self, what: str, kind: str, message: str, hint: str) -> None:
        if what == self.reply_id:
            self.reply_id = None
            self.transcript.end_reply(f"*No reply: {message}*", {"stop_reason": "error"})
        elif what == "load":
            self.loading = False
            self.loaded_key = None
        self.state.setText(f"{message} {hint}".strip())
        self.busy_changed.emit()

    def _on_ended(self, code: int, line: str) -> None:
        was_loaded = self.loaded_key is not None or self.loading
        self.loading, self.loaded_key, self.reply_id = False, None, None
        if was_loaded:
            self.state.setText(
                f"The model process ended ({line or f'exit code {code}'}). Load it again to go on."
            )
        self.busy_changed.emit()
