"""The demo model's state for the whole window: absent, preparing, ready or failed.

It is converted once from its GGUF file, in an engine child process, when a project uses it
(about a minute of CPU on the first start). Pages that need a model ask `is_preparing(path)`
and are told through `preparing` and `ready`, so none of them reports a missing folder that
the app itself is still making.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.infra.engine_process import EngineProcess
from engine.cli.protocol import EXIT_DONE, EXIT_NO_STATUS, EXIT_STOPPED

PREPARING_DEMO = "Preparing the demo model (once, about a minute)…"


def _same_folder(a: str | Path, b: str | Path) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


class DemoModel(QObject):
    preparing = Signal(str)  # the folder being made
    ready = Signal(str)  # the folder, now usable
    failed = Signal(str, str)  # message, hint: the conversion did not succeed
    stopped = Signal()  # the conversion was stopped (window closing); nothing half-made is kept

    def __init__(self, enabled: bool = True, parent: QObject | None = None) -> None:
        """`enabled=False` never starts a conversion (tests that need no demo model)."""
        super().__init__(parent)
        from engine.models.demo import demo_model_dir

        self.folder = demo_model_dir()
        self.enabled = enabled
        self.process: EngineProcess | None = None
        self._tried = False  # once per session: a failed conversion is reported once, not on every rescan

    def is_preparing(self, model: str | Path | None = None) -> bool:
        """Whether the conversion is running (for `model`: and it is the demo model's folder)."""
        if self.process is None:
            return False
        return model is None or (bool(str(model)) and _same_folder(model, self.folder))

    def is_ready(self) -> bool:
        from engine.models.demo import demo_model_ready

        return demo_model_ready(self.folder)

    def prepare_for(self, projects: list) -> None:
        """Start the conversion if a project uses the demo model and it is not there yet."""
        if not self.enabled or self._tried or self.is_ready():
            return
        if not any(p.model and _same_folder(p.model, self.folder) for p in projects):
            return  # nobody needs it: no minute of CPU and no 270 MB on disk
        self._tried = True
        self.process = EngineProcess(["demo-model"], self)
        self.process.ended.connect(self._on_ended)
        self.process.start()
        self.preparing.emit(str(self.folder))

    def stop(self) -> None:
        """For shutdown: the conversion starts over next time."""
        if self.process is not None:
            self.process.stop_now()

    def _on_ended(self, code: int, line: str) -> None:
        self.process = None
        if code == EXIT_DONE:
            self.ready.emit(str(self.folder))
        elif code in (EXIT_STOPPED, EXIT_NO_STATUS):  # a stop we asked for
            self.stopped.emit()
        else:
            self.failed.emit("The demo model could not be prepared.", line)
