"""One run, live or finished: state, progress and ETA, controls, plots and the log.

The monitor follows the run folder with its own watcher from the first event, so a run
re-attached after a restart shows its whole history. It never decides how a run ended:
the RunManager does, and the Train tab passes that on through `set_state`.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.train.plots import RunPlots
from app.train.supervisor import RunWatcher
from engine.util.files import format_duration

STATE_TEXT = {
    "starting": ("Starting the engine…", "#5b8def"), "loading": ("Loading the model and data…", "#5b8def"),
    "training": ("Training", "#2e8b57"), "saving": ("Saving the adapter…", "#2e8b57"),
    "running": ("Running", "#2e8b57"), "done": ("Done", "#2e8b57"), "stopped": ("Stopped", "#b9770e"),
    "paused": ("Paused", "#b9770e"), "failed": ("Failed", "#d9534f"), "interrupted": ("Interrupted", "#d9534f"),
    "new": ("Not started", "gray"),
}
ACTIVE = ("starting", "loading", "training", "saving", "running")


def log_line(event: dict) -> str | None:
    """A human line for the log pane; metrics go to the plots instead."""
    kind = event.get("type")
    if kind == "metrics":
        return None  # by far the most common event: decided before any formatting
    stamp = time.strftime("%H:%M:%S", time.localtime(event.get("time") or 0))
    if kind == "status":
        extra = f" — {event['message']}" if event.get("message") else ""
        step = f" at step {event['step']}" if event.get("step") else ""
        return f"{stamp}  [{event.get('state')}]{step}{extra}"
    if kind == "warning":
        return f"{stamp}  warning: {event.get('message')}"
    if kind == "error":
        return f"{stamp}  error: {event.get('message')} {event.get('hint') or ''}".rstrip()
    if kind == "checkpoint":
        return f"{stamp}  checkpoint saved at step {event.get('step')}"
    if kind == "eval" and event.get("eval_loss") is not None:
        return f"{stamp}  eval loss {event['eval_loss']:.4f} at step {event.get('step')}"
    if kind == "data":
        return (f"{stamp}  data: {event.get('train_rows')} training rows, {event.get('validation_rows')} validation "
                f"rows, {event.get('trained_tokens')} trained tokens")
    if kind == "model":
        world = event.get("world_size") or 1
        ranks = f" × {world} processes (data-parallel; tokens/s is their sum)" if world > 1 else ""
        return (f"{stamp}  model on {event.get('device')}{ranks} ({event.get('dtype')}): "
                f"{event.get('trainable_parameters'):,} trainable of {event.get('total_parameters'):,} parameters")
    return None


class RunMonitor(QWidget):
    stopRequested = Signal(Path, bool)  # run, pause
    resumeRequested = Signal(Path, object)  # run, checkpoint step (None: the latest)
    trainFurtherRequested = Signal(Path, int)  # run, new max_steps

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run_dir: Path | None = None
        self.state = "new"
        self.step, self.max_steps = 0, 0
        self.checkpoints: list[int] = []
        self._watcher: RunWatcher | None = None
        self._recent: deque[tuple[float, int]] = deque(maxlen=30)

        self.title = QLabel(self)
        self.title.setStyleSheet("font-size: 15px; font-weight: bold;")
        self.state_label = QLabel(self)
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar(self)
        self.eta = QLabel(self)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setToolTip("Finish the current step, save a checkpoint and end the run (it can be resumed).")
        self.pause_button = QPushButton("Pause", self)
        self.pause_button.setToolTip("Save a checkpoint and stop; the run shows as paused until you resume it.")
        self.checkpoint = QComboBox(self)
        self.checkpoint.setToolTip("Resume from this checkpoint; later checkpoints are removed.")
        self.resume_button = QPushButton("Resume", self)
        self.more_steps = QSpinBox(self)
        self.more_steps.setRange(1, 10_000_000)
        self.more_steps.setValue(100)
        self.more_steps.setPrefix("+")
        self.more_steps.setSuffix(" steps")
        self.further_button = QPushButton("Train further", self)
        self.further_button.setToolTip("Continue this run from its last checkpoint for more steps; the curve goes on.")

        header = QHBoxLayout()
        header.addWidget(self.title)
        header.addWidget(self.state_label)
        header.addStretch(1)
        for widget in (self.stop_button, self.pause_button, self.checkpoint, self.resume_button,
                       self.more_steps, self.further_button):
            header.addWidget(widget)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.eta)

        self.plots = RunPlots(self)
        self.log = QPlainTextEdit(self)
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(3000)
        self.log.setPlaceholderText("Status, warnings and checkpoints appear here.")
        split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(self.plots)
        split.addWidget(self.log)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(self.message)
        layout.addLayout(progress_row)
        layout.addWidget(split, 1)

        self.stop_button.clicked.connect(lambda: self._request_stop(False))
        self.pause_button.clicked.connect(lambda: self._request_stop(True))
        self.resume_button.clicked.connect(self._on_resume)
        self.further_button.clicked.connect(self._on_further)
        self.checkpoint.currentIndexChanged.connect(lambda _i: self._refresh())

    # ---- which run ---------------------------------------------------------------------------
    def show_run(self, summary, active: bool) -> None:
        """Show a run (a RunSummary); `active` when the RunManager follows its engine."""
        if self.run_dir != summary.path:
            self._stop_watching()
            self.run_dir = summary.path
            self.plots.clear()
            self.log.clear()
            self._recent.clear()
            self.step, self.max_steps = summary.step or 0, summary.max_steps or 0
            self.title.setText(summary.name)
            watcher = RunWatcher(summary.path, judge=False, paced=True, parent=self)
            watcher.events.connect(lambda events, w=watcher: self._on_events(events, w))
            self._watcher = watcher
            self._watcher.start()
        self.update_summary(summary, active)

    def update_summary(self, summary, active: bool) -> None:
        if summary.path != self.run_dir:
            return
        self.checkpoints = [step for step, _path in summary.checkpoints]
        current = self.checkpoint.currentData()
        self.checkpoint.clear()
        for i, step in enumerate(reversed(self.checkpoints)):
            self.checkpoint.addItem(f"from step {step}" + (" (latest)" if i == 0 else ""), step)
        if current in self.checkpoints:
            self.checkpoint.setCurrentIndex(self.checkpoint.findData(current))
        if active:
            if self.state not in ACTIVE:
                self.state = "starting"
        else:
            self.state = summary.state
            self.message.setText(summary.message or "")
        self.max_steps = summary.max_steps or self.max_steps
        self._refresh()

    def set_state(self, state: str, message: str = "") -> None:
        """How the run ended (from the RunManager), or that it (re)started."""
        self.state = state
        self.message.setText(message)
        self._refresh()

    def _stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.events.disconnect()
            self._watcher.stop()
            self._watcher.deleteLater()
            self._watcher = None

    def shutdown(self) -> None:
        self._stop_watching()

    # ---- events ----------------------------------------------------------------------------
    def _on_events(self, events: list, watcher: RunWatcher | None = None) -> None:
        if watcher is not self._watcher:
            return  # queued before the monitor switched to another run
        watcher.consumed()
        self.plots.add_events(events)
        lines = []
        metrics = [e for e in events if e.get("type") == "metrics"]
        for event in metrics[-self._recent.maxlen:]:  # only the latest ones matter for progress and ETA
            self.step = int(event.get("step") or self.step)
            self.max_steps = int(event.get("max_steps") or self.max_steps)
            self._recent.append((float(event.get("time") or 0), self.step))
        for event in events if len(metrics) < len(events) else ():
            kind = event.get("type")
            if kind == "status":
                if event.get("max_steps"):
                    self.max_steps = int(event["max_steps"])
                if event.get("state") == "training":
                    self._recent.clear()  # a resume: time spent loading is not training speed
                if self.state in ACTIVE and event.get("state") in ACTIVE:
                    self.state = event["state"]
            line = log_line(event)
            if line:
                lines.append(line)
        if lines:
            self.log.appendPlainText("\n".join(lines))
        self._refresh()

    def seconds_left(self) -> float | None:
        if len(self._recent) < 2 or not self.max_steps:
            return None
        (t0, s0), (t1, s1) = self._recent[0], self._recent[-1]
        if s1 <= s0 or t1 <= t0:
            return None
        return (self.max_steps - self.step) * (t1 - t0) / (s1 - s0)

    def _refresh(self) -> None:
        text, colour = STATE_TEXT.get(self.state, (self.state, "gray"))
        self.state_label.setText(f"<b style='color:{colour}'>● {text}</b>")
        self.progress.setRange(0, max(self.max_steps, 1))
        self.progress.setValue(min(self.step, max(self.max_steps, 1)))
        self.progress.setFormat(f"step {self.step} of {self.max_steps or '?'}")
        left = self.seconds_left() if self.state in ACTIVE else None
        self.eta.setText(f"about {format_duration(left)} left" if left is not None else "")
        active = self.state in ACTIVE
        has_checkpoint = bool(self.checkpoints)
        self.stop_button.setEnabled(active)
        self.pause_button.setEnabled(active)
        self.checkpoint.setEnabled(not active and has_checkpoint)
        # A finished run resumes only from an earlier checkpoint (a new branch); its latest one trains further.
        earlier = self.checkpoints and self.checkpoint.currentData() not in (None, self.checkpoints[-1])
        self.resume_button.setEnabled(not active and has_checkpoint and (self.state != "done" or bool(earlier)))
        self.further_button.setEnabled(not active and self.state == "done" and has_checkpoint)
        self.more_steps.setEnabled(self.further_button.isEnabled())

    # ---- controls ----------------------------------------------------------------------------
    def _request_stop(self, pause: bool) -> None:
        if self.run_dir is not None:
            self.stopRequested.emit(self.run_dir, pause)
            self.message.setText("Pausing after this step…" if pause else "Stopping after this step…")
            self.stop_button.setEnabled(False)
            self.pause_button.setEnabled(False)

    def _on_resume(self) -> None:
        if self.run_dir is not None:
            step = self.checkpoint.currentData()
            latest = self.checkpoints[-1] if self.checkpoints else None
            self.resumeRequested.emit(self.run_dir, None if step == latest else step)

    def _on_further(self) -> None:
        if self.run_dir is not None:
            self.trainFurtherRequested.emit(self.run_dir, self.step + self.more_steps.value())
