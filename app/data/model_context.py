"""The Data tab's view of the project's base model: its folder, the max length, and its tokenizer.

The tokenizer is loaded only for "What gets trained": transformers imports torch, whose libraries
load while holding the GIL (about 0.5 s without a UI frame, measured), so never at start-up; the
review loads its own in a child process. While the app is still making the model's folder (the
demo model on a first start) the model is "preparing": rows are checked without it and nothing
reports the folder missing; once it is ready everything is checked again.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.infra.tasks import TaskRunner, while_alive


def _same_folder(a: str, b: str) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


class ModelContext(QObject):
    tokenizer_loading = Signal()
    tokenizer_ready = Signal()
    tokenizer_failed = Signal(str)  # the message to show in place of the rendered row

    def __init__(self, tasks: TaskRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.tasks = tasks
        self.folder: str | None = None  # the project's base model folder
        self.max_length = 1024
        self.tokenizer = None
        self.state = ""  # "", "loading", "ready" or "failed", for `model`
        self.preparing = ""  # a model folder the app is still making

    def set_folder(self, folder: str | None) -> bool:
        """The project's model folder; True when it changed (its tokenizer is dropped)."""
        if folder == self.folder:
            return False
        self.folder, self.tokenizer, self.state = folder, None, ""
        return True

    def waiting(self) -> bool:
        """The model's folder is being made by the app: check without it, say so, report nothing."""
        return bool(self.folder and self.preparing) and _same_folder(self.folder, self.preparing)

    def set_preparing(self, folder: str, preparing: bool) -> bool:
        """The app started or ended making `folder`; True when that is this project's model."""
        concerns = bool(self.folder and folder) and _same_folder(self.folder, folder)
        self.preparing = folder if preparing else ""
        if concerns and not preparing and self.state == "failed":
            self.state = ""  # it failed while the folder was missing: try again now it is there
        return concerns

    def review_model(self) -> str | None:
        """The model the review tokenizes with (none while it is being made)."""
        return None if self.waiting() else self.folder

    def ensure_tokenizer(self) -> None:
        if self.folder and not self.state and not self.waiting():
            self.state = "loading"
            self._load(self.folder)

    def _load(self, model: str) -> None:
        from engine.config import ModelConfig

        def load(_progress, _cancelled):
            from engine.models.loading import load_tokenizer

            return model, load_tokenizer(ModelConfig(path=model))

        def done(result) -> None:
            if result[0] != self.folder:
                return  # the project's model changed meanwhile
            self.tokenizer, self.state = result[1], "ready"
            self.tokenizer_ready.emit()

        def failed(message: str, hint: str) -> None:
            if model != self.folder:
                return
            self.state = "failed"
            self.tokenizer_failed.emit(f"The base model's tokenizer cannot be loaded: {message} {hint}")

        self.tokenizer_loading.emit()
        self.tasks.run(load, while_alive(self, done), while_alive(self, failed), name="tokenizer")
