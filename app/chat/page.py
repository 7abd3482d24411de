"""The Chat tab: talk to the project's base model with or without an adapter, or to two side by side.

Each side is a chat-server engine process (app.chat.client): loading, generating and any
out-of-memory crash stay out of the GUI. In compare mode one prompt goes to both sides with
the same sampling settings and the same seed.
"""

from __future__ import annotations

import random
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.chat.add_to_dataset import AddToDatasetDialog
from app.chat.composer import ChatComposer
from app.chat.history import ChatHistory
from app.chat.preference_picks import PreferencePicks
from app.chat.sampling_panel import SamplingPanel
from app.chat.side import ChatSide
from app.widgets.run_labels import checkpoints_best_first, run_result, run_title
from engine.chat.loading import GenerationSettings
from engine.chat.store import Conversation, load_conversation, save_conversation
from engine.errors import UserError

BASE_ONLY = "Base model (no adapter)"
DEVICES = (("Auto (GPU if there is one)", "auto"), ("CPU", "cpu"), ("CUDA GPU", "cuda"))


def adapter_choices(project) -> list[tuple[str, str | None]]:
    """(label, path) for the base model alone, then each run's final adapter and its checkpoints."""
    choices: list[tuple[str, str | None]] = [(BASE_ONLY, None)]
    for run in project.runs if project is not None else ():
        title = run_title(run)
        if run.adapter:
            choices.append((f"{title}: final adapter", str(run.adapter)))
        elif run.model:
            choices.append((f"{title}: fine-tuned model (full)", str(run.model)))
        for step, path, best in checkpoints_best_first(run):
            best_text = " (best: lowest validation loss)" if best else ""
            choices.append((f"{title}: checkpoint step {step}{best_text}", str(path)))
    return choices


def newest_result(project) -> str | None:
    """The newest finished run's result (runs are listed newest first); failed or killed runs are skipped."""
    for run in project.runs if project is not None and not project.problem else ():
        result = run_result(run) if run.state in ("done", "stopped", "paused") else None
        if result is not None:
            return result
    return None


class ChatPage(QWidget):
    failed = Signal(str, str)  # message, hint
    status = Signal(str)
    rowForDataset = Signal(object, list)  # dataset Path, messages: the Data tab adds the row
    # dataset Path, build(shape) -> record, columns of a new dataset, undo text, added() called once the
    # row is in: a preference row
    recordForDataset = Signal(object, object, list, str, object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = "Chat"
        self.project = None
        self.conversation: Conversation | None = None
        self._edited_side = 0
        self._preparing_model = ""  # a model folder the app is still making (the demo model): Load waits
        self.model_label = QLabel(self)
        self.model_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.device = QComboBox(self)
        for label, key in DEVICES:
            self.device.addItem(label, key)
        self.compare = QCheckBox("Compare side by side", self)
        self.compare.setToolTip(
            "Send each prompt to two models (e.g. base and tuned) with the same settings and seed"
        )
        self.load_button = QPushButton("Load", self)
        self.unload_button = QPushButton("Unload", self)
        self.unload_button.setToolTip("Free the memory the loaded models use")
        self.add_button = QPushButton("Add to dataset…", self)
        self.add_button.setToolTip(
            "Turn the conversation (correct a reply first with its Edit button) into a training row"
        )
        self.sets_button = QPushButton("Prompt sets…", self)
        self.sets_button.setToolTip("Saved test prompts, run against the loaded models, replies side by side")
        self.history = ChatHistory(self)
        self.new_button = self.history.new_button
        self.busy = QProgressBar(self)
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(120)
        self.busy.hide()
        self.sides = [ChatSide("", self), ChatSide("", self)]
        self.sampling = SamplingPanel(self)
        self.composer = ChatComposer(self)

        bar = QHBoxLayout()
        bar.addWidget(self.model_label, 1)
        bar.addWidget(self.device)
        bar.addWidget(self.compare)
        bar.addWidget(self.load_button)
        bar.addWidget(self.unload_button)
        bar.addWidget(self.add_button)
        bar.addWidget(self.sets_button)
        bar.addWidget(self.busy)
        transcripts = self.transcripts = QSplitter(Qt.Orientation.Horizontal, self)
        for side in self.sides:
            transcripts.addWidget(side)
        center = QWidget(self)
        column = QVBoxLayout(center)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(transcripts, 1)
        column.addWidget(self.composer)
        body = QSplitter(Qt.Orientation.Horizontal, self)
        body.addWidget(self.history)
        body.addWidget(center)
        body.addWidget(self.sampling)
        body.setStretchFactor(1, 1)
        body.setSizes([200, 800, 300])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addLayout(bar)
        layout.addWidget(body, 1)

        self.load_button.clicked.connect(self.load)
        self.unload_button.clicked.connect(self.unload)
        self.history.new_requested.connect(self.new_chat)
        self.history.chosen.connect(self.open_conversation)
        self.add_button.clicked.connect(self.add_to_dataset)
        self.sets_button.clicked.connect(self.open_prompt_sets)
        self.compare.toggled.connect(self._on_compare_toggled)
        self.composer.send.connect(self.send)
        self.composer.stop.connect(self.stop)
        for side in self.sides:
            side.busy_changed.connect(self._update_state)
            side.adapter.currentIndexChanged.connect(self._update_state)
            side.client.done.connect(self._on_reply_done)
            side.transcript.set_editable(True)
            side.transcript.edited.connect(self._on_reply_edited)
        self.picks = PreferencePicks(self)  # pairs (compare mode) and rated replies become preference rows
        self._on_compare_toggled(False)
        self.show_project(None)

    # ---- project ---------------------------------------------------------------------------
    def show_project(self, project) -> None:
        changed = (project.path if project else None) != (self.project.path if self.project else None)
        self.project = project
        if changed:
            self.unload()
            self.new_chat()
            self.history.show_project(project.path if project is not None and not project.problem else None)
        model = project.model if project is not None and not project.problem else None
        if project is None:
            text = "No project selected. Pick one on the left, or create one with File → New project."
        elif project.problem:
            text = f"{project.name} cannot be opened: {project.problem}"
        elif model:
            text = f"Base model: <b>{Path(model).name}</b>"
        else:
            text = "No base model: choose one in the Train tab or the Model library (Ctrl+L)."
        self.model_label.setText(text)
        choices = adapter_choices(project)
        for side in self.sides:
            side.set_choices(choices)
            side.picked = side.picked and not changed
        self._choose_defaults()
        self._update_state()

    def _choose_defaults(self) -> None:
        """The newest run's result on the left and the base model on the right, until the user picks.

        Runs on every rescan, so a run that just finished becomes the default without a restart.
        """
        for side, wanted in zip(self.sides, (newest_result(self.project), None), strict=True):
            if not side.picked and not side.in_use():
                self._choose_adapter(side, wanted)

    def chat_with(self, run_dir: Path) -> bool:
        """Compare a run's result with the base model, side by side, and load both ("Chat with it")."""
        from engine.runs.state import summarize_run

        if any(side.generating() for side in self.sides):
            self.status.emit("Wait for the replies to finish (or press Stop), then try again.")
            return False
        try:
            result = run_result(summarize_run(run_dir))
        except FileNotFoundError:
            result = None
        if result is None:
            self.failed.emit(
                f"Run {run_title(run_dir)} has no adapter or checkpoint to chat with yet.",
                "Train it until it saves a checkpoint, or pick another run.",
            )
            return False
        if any(side.transcript.messages() for side in self.sides):
            self.new_chat()  # the last conversation is saved; this one compares other models
        self.compare.setChecked(True)
        for side, wanted in zip(self.sides, (result, None), strict=True):
            if side.adapter.findData(wanted) < 0:  # the rescan that lists the run has not arrived yet
                side.adapter.addItem(f"{run_title(run_dir)}: {Path(result).name}", wanted)
            self._choose_adapter(side, wanted)
            side.picked = True
        self._update_state()
        self.load()
        return True

    def _model(self) -> str | None:
        project = self.project
        return project.model if project is not None and not project.problem and project.model else None

    def _active_sides(self) -> list[ChatSide]:
        return self.sides if self.compare.isChecked() else self.sides[:1]

    # ---- actions ---------------------------------------------------------------------------
    def load(self) -> None:
        model = self._model()
        if model is None:
            return
        for side in self._active_sides():
            side.load(model, self.device.currentData())
        self._update_state()

    def unload(self) -> None:
        for side in self.sides:
            side.unload()

    def release_gpu(self) -> bool:
        """Unload the models this page holds on a GPU (a run has started there and needs the memory);
        True if there was one. The conversation stays; Load brings the model back."""
        on_gpu = [side for side in self.sides if side.loaded_key is not None and side.loaded_device == "cuda"]
        for side in on_gpu:
            side.stop()
            side.unload()
        return bool(on_gpu)

    def new_chat(self) -> None:
        for side in self.sides:
            side.stop()
            side.transcript.set_messages([])
        self.conversation = None
        self.history.list.clearSelection()
        self._update_state()

    # ---- conversations ---------------------------------------------------------------------
    def save_conversation(self) -> None:
        """Saved after every finished reply and every correction: nothing typed here is lost."""
        if self.project is None or self.project.problem or any(s.generating() for s in self.sides):
            return
        first, second = self.sides
        if not first.transcript.messages():
            return
        settings = self.sampling.settings() or {}
        conv = self.conversation or Conversation()
        conv.model, conv.adapter = self._model() or "", first.adapter.currentData()
        conv.settings = GenerationSettings.from_dict(settings)
        conv.messages = first.transcript.messages()
        conv.compare = (
            {"adapter": second.adapter.currentData(), "messages": second.transcript.messages()}
            if self.compare.isChecked()
            else None
        )
        try:
            save_conversation(self.project.path, conv)
        except (UserError, OSError) as exc:
            self.failed.emit(
                f"The conversation was not saved: {getattr(exc, 'message', exc)}",
                "Check that the project folder is writable and the disk not full.",
            )
            return
        self.conversation = conv
        self.history.refresh(select=conv.id)

    def open_conversation(self, conv_id: str) -> None:
        if self.project is None or any(s.generating() for s in self.sides):
            return
        try:
            conv = load_conversation(self.project.path, conv_id)
        except UserError as exc:
            self.failed.emit(exc.message, exc.hint)
            return
        self.conversation = conv
        self.compare.setChecked(conv.compare is not None)
        for side in self.sides:
            side.picked = True  # the conversation's models, not the newest run's
        self._choose_adapter(self.sides[0], conv.adapter)
        self.sides[0].transcript.set_messages(conv.messages)
        if conv.compare is not None:
            self._choose_adapter(self.sides[1], conv.compare.get("adapter"))
            self.sides[1].transcript.set_messages(conv.compare["messages"])
        self.sampling.set_settings(conv.settings.to_dict())
        self._update_state()

    @staticmethod
    def _choose_adapter(side: ChatSide, adapter: str | None) -> None:
        found = side.adapter.findData(adapter)
        if found >= 0:
            side.adapter.setCurrentIndex(found)

    def _on_reply_done(self, *_args) -> None:
        self.save_conversation()

    def _on_reply_edited(self, _index: int, _text: str) -> None:
        # In compare mode the corrected side is the one to learn from.
        self._edited_side = 1 if self.sender() is self.sides[1].transcript else 0
        self.save_conversation()

    def prompt_sets_dialog(self):
        from app.chat.prompt_sets import PromptSetsDialog

        return PromptSetsDialog(self, self)

    def open_prompt_sets(self) -> None:
        if self.project is not None and not self.project.problem:
            self.prompt_sets_dialog().exec()

    def choose_dataset_for_row(self, messages: list[dict]) -> Path | None:
        """Ask which dataset gets the row (tests replace this)."""
        training = Path(self.project.dataset) if self.project.dataset else None
        datasets = sorted(
            (d.path for d in self.project.datasets), key=lambda path: path != training
        )  # training data first
        dialog = AddToDatasetDialog(messages, datasets, self.project.path / "datasets", self)
        return dialog.chosen() if dialog.exec() else None

    def add_to_dataset(self) -> None:
        """The first side's conversation (in compare mode: the side last corrected) becomes a training row."""
        from engine.chat.store import conversation_to_row

        if self.project is None:
            return
        side = self.sides[self._edited_side] if self.compare.isChecked() else self.sides[0]
        system = self.sampling.system_prompt().strip()
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": m["role"], "content": m["content"]} for m in side.transcript.messages()
        ]
        try:
            conversation_to_row(messages)
        except UserError as exc:
            self.failed.emit(exc.message, exc.hint)
            return
        target = self.choose_dataset_for_row(messages)
        if target is not None:
            self.rowForDataset.emit(target, messages)

    def send(self, text: str) -> None:
        settings = self.sampling.settings()
        sides = self._active_sides()
        if settings is None or not all(side.ready() for side in sides):
            return
        if len(sides) > 1 and settings.get("temperature", 0) > 0 and settings.get("seed") is None:
            settings["seed"] = random.randrange(2**31)  # one seed for both sides: a fair comparison
        system = self.sampling.system_prompt().strip()
        for side in sides:
            history = [m for m in side.transcript.messages() if m["role"] in ("user", "assistant")]
            messages = (
                ([{"role": "system", "content": system}] if system else [])
                + [{"role": m["role"], "content": m["content"]} for m in history]
                + [{"role": "user", "content": text}]
            )
            side.transcript.set_messages([*side.transcript.messages(), {"role": "user", "content": text}])
            side.send(messages, settings)
        self._update_state()

    def stop(self) -> None:
        for side in self.sides:
            side.stop()

    # ---- state ------------------------------------------------------------------------------
    def _on_compare_toggled(self, on: bool) -> None:
        self.sides[1].setVisible(on)
        if on:
            half = max(self.transcripts.width() // 2, 200)
            self.transcripts.setSizes([half, half])
        self._update_state()

    def set_model_preparing(self, folder: str, preparing: bool) -> None:
        """The app is making `folder` (the demo model): Load waits for it instead of failing."""
        self._preparing_model = folder if preparing else ""
        self._update_state()

    def _waiting_for_model(self, model: str | None) -> bool:
        preparing = self._preparing_model
        return bool(model and preparing) and Path(model).resolve() == Path(preparing).resolve()

    def _update_state(self, *_args) -> None:
        sides = self._active_sides()
        generating = any(side.generating() for side in self.sides)
        loading = any(side.loading for side in self.sides)
        self.busy.setVisible(loading)
        model = self._model()
        waiting = self._waiting_for_model(model)
        self.load_button.setEnabled(model is not None and not loading and not generating and not waiting)
        self.unload_button.setEnabled(any(side.loaded_key for side in self.sides) and not generating)
        self.composer.set_busy(generating)
        self.sets_button.setEnabled(self.project is not None and not self.project.problem and not generating)
        self.add_button.setEnabled(
            not generating and self.project is not None and bool(self.sides[0].transcript.messages())
        )
        if model is None:
            reason = "Choose a base model first"
        elif waiting:
            reason = "Preparing the demo model (once, about a minute)…"
        elif not all(side.ready() for side in sides):
            reason = (
                "Loading…" if loading else "Press Load to load the model" + ("s" if len(sides) > 1 else "")
            )
        else:
            stale = [side for side in sides if side.loaded_key[1] != side.adapter.currentData()]
            reason = "Press Load: the adapter choice changed" if stale else None
        self.composer.set_enabled_reason(None if generating else reason)
        for side in self.sides:
            side.transcript.set_title(side.adapter.currentText())
        self.picks.refresh()

    def shutdown(self) -> None:
        for side in self.sides:
            side.client.stop(2000)
