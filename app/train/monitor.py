"""One run, live or finished: state, progress and ETA, controls, plots and the log.

The monitor reads a run through a RunFeed from the RunManager (its history from the first
event, then what the manager's one watcher of that run hands on), so a run re-attached after
a restart shows its whole history. It never decides how a run ended: the RunManager's verdict
comes through the Train tab's `set_state`; states and log lines are engine.runs' words.
"""

from __future__ import annotations

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

from app.train.feed import RunFeed
from app.train.plots import RunPlots
from app.train.run_manager import RunManager
from engine.runs.checkpoints import complete_checkpoints
from engine.runs.state import summarize_run
from engine.runs.text import stamped_text
from engine.runs.verdict import STATE_HEADINGS, judge_run
from engine.util.files import format_duration

STATE_COLOURS = {
    "starting": "#5b8def",
    "loading": "#5b8def",
    "training": "#2e8b57",
    "saving": "#2e8b57",
    "running": "#2e8b57",
    "done": "#2e8b57",
    "stopped": "#b9770e",
    "paused": "#b9770e",
    "failed": "#d9534f",
    "interrupted": "#d9534f",
}
ACTIVE = ("starting", "loading", "training", "saving", "running")


class RunMonitor(QWidget):
    stopRequested = Signal(Path, bool)  # run, pause
    resumeRequested = Signal(Path, object)  # run, checkpoint step (None: the latest)
    trainFurtherRequested = Signal(Path, int)  # run, new max_steps

    def __init__(self, runs: RunManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._runs = runs
        self.run_dir: Path | None = None
        self.state = "new"
        self.step, self.max_steps = 0, 0
        self.checkpoints: list[int] = []
        self.failure = ""  # a failed run's error kind: a diverged one is not offered Resume
        self._feed: RunFeed | None = None
        self._recent: deque[tuple[float, int]] = deque(maxlen=30)

        self.title = QLabel(self)
        self.title.setStyleSheet("font-size: 15px; font-weight: bold;")
        self.title.setMinimumWidth(80)  # a long run name never widens the monitor (its tooltip has it all)
        self.state_label = QLabel(self)
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.hide()  # until there is something to say (_say)
        self.progress = QProgressBar(self)
        self.eta = QLabel(self)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setToolTip(
            "Finish the current step, save a checkpoint and end the run (it can be resumed)."
        )
        self.pause_button = QPushButton("Pause", self)
        self.pause_button.setToolTip(
            "Save a checkpoint and stop; the run shows as paused until you resume it."
        )
        self.checkpoint = QComboBox(self)
        self.checkpoint.setToolTip("Resume from this checkpoint; later checkpoints are removed.")
        # As wide as "from step 145 (latest)": the width of its first, empty state cut that off.
        self.checkpoint.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.resume_button = QPushButton("Resume", self)
        self.more_steps = QSpinBox(self)
        self.more_steps.setRange(1, 10_000_000)
        self.more_steps.setValue(100)
        self.more_steps.setPrefix("+")
        self.more_steps.setSuffix(" steps")
        self.further_button = QPushButton("Train further", self)
        self.further_button.setToolTip(
            "Continue this run from its last checkpoint for more steps; the curve goes on."
        )

        # The name on a line of its own: beside six controls it was cut off, and their width
        # squeezed the run list beside the monitor.
        header = QHBoxLayout()
        header.addWidget(self.title)
        header.addWidget(self.state_label)
        header.addStretch(1)
        controls = QHBoxLayout()
        for widget in (self.stop_button, self.pause_button):
            controls.addWidget(widget)
        controls.addStretch(1)
        for widget in (self.checkpoint, self.resume_button, self.more_steps, self.further_button):
            controls.addWidget(widget)
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
        layout.addLayout(controls)
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
            self.title.setToolTip(summary.name)
            self._feed = self._runs.follow(summary.path, self)
            self._feed.events.connect(self._on_events)
        self.update_summary(summary, active)

    def update_summary(self, summary, active: bool) -> None:
        if summary.path != self.run_dir:
            return
        self._show_checkpoints([step for step, _path in summary.checkpoints])
        if active:
            if self.state not in ACTIVE:
                self.state = "starting"
        else:
            self.state, self.failure = summary.state, summary.failure
            self._say(summary.message or "")
        self.max_steps = summary.max_steps or self.max_steps
        self._refresh()

    def set_state(self, state: str, message: str = "") -> None:
        """How the run ended (from the RunManager), or that it (re)started."""
        self.state = state
        self._say(message)
        self.failure = ""
        if state == "failed" and self.run_dir is not None and self.run_dir.is_dir():
            self.failure = summarize_run(self.run_dir).failure
        if state not in ACTIVE and self.run_dir is not None:
            # The checkpoint it just saved can be resumed now, not after the next workspace scan.
            self._show_checkpoints([step for step, _path in complete_checkpoints(self.run_dir)])
        self._refresh()

    def _say(self, text: str) -> None:
        """The line under the controls; hidden while empty, so it leaves no gap above the progress."""
        self.message.setText(text)
        self.message.setVisible(bool(text))

    def _show_checkpoints(self, steps: list[int]) -> None:
        self.checkpoints = steps
        current = self.checkpoint.currentData()
        # "latest" stays the latest as new checkpoints arrive (a pause adds one): only an earlier step the
        # user picked is kept, or Resume would branch from an old checkpoint and drop the newer ones.
        picked = current if self.checkpoint.currentIndex() > 0 else None
        self.checkpoint.blockSignals(True)  # one refresh at the end, not one per item
        self.checkpoint.clear()
        for i, step in enumerate(reversed(steps)):
            self.checkpoint.addItem(f"from step {step}" + (" (latest)" if i == 0 else ""), step)
        if picked in steps:
            self.checkpoint.setCurrentIndex(self.checkpoint.findData(picked))
        self.checkpoint.blockSignals(False)

    def _stop_watching(self) -> None:
        if self._feed is not None:
            self._feed.events.disconnect(self._on_events)
            self._feed.close()
            self._feed.deleteLater()
            self._feed = None

    def shutdown(self) -> None:
        self._stop_watching()

    # ---- events ----------------------------------------------------------------------------
    def _on_events(self, events: list) -> None:
        self.plots.add_events(events)
        lines = []
        metrics = [e for e in events if e.get("type") == "metrics"]
        for event in metrics[-self._recent.maxlen :]:  # only the latest ones matter for progress and ETA
            self.step = int(event.get("step") or self.step)
            self.max_steps = int(event.get("max_steps") or self.max_steps)
            self._recent.append((float(event.get("time") or 0), self.step))
        for event in events if len(metrics) < len(events) else ():
            kind = event.get("type")
            if kind == "metrics":
                continue  # plotted, not logged
            if kind == "status":
                if event.get("max_steps"):
                    self.max_steps = int(event["max_steps"])
                if event.get("state") == "training":
                    self._recent.clear()  # a resume: time spent loading is not training speed
                if self.state in ACTIVE:  # a live phase; how the run ends is the RunManager's verdict
                    verdict = judge_run(event, alive=True)
                    self.state = verdict.shown if verdict.state == "running" else self.state
            line = stamped_text(event)
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
        text, colour = STATE_HEADINGS.get(self.state, self.state), STATE_COLOURS.get(self.state, "gray")
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
        # A finished run resumes only from an earlier checkpoint (a new branch);
        # its latest one trains further.
        earlier = self.checkpoints and self.checkpoint.currentData() not in (None, self.checkpoints[-1])
        # A run whose loss became NaN would repeat the same steps from its checkpoint, data order and
        # optimizer state included: a new run with a lower learning rate is the way on.
        diverged = self.state == "failed" and self.failure == "diverged"
        self.resume_button.setEnabled(
            not active and has_checkpoint and (self.state != "done" or bool(earlier)) and not diverged
        )
        self.resume_button.setToolTip(
            "This run diverged: resuming would repeat the same steps. Start a new run with a lower "
            "learning rate (+ New run in the runs list)."
            if diverged
            else "Continue the run from the checkpoint picked beside this button."
        )
        self.further_button.setEnabled(not active and self.state == "done" and has_checkpoint)
        self.more_steps.setEnabled(self.further_button.isEnabled())

    # ---- controls ----------------------------------------------------------------------------
    def _request_stop(self, pause: bool) -> None:
        if self.run_dir is not None:
            self.stopRequested.emit(self.run_dir, pause)
            self._say("Pausing after this step…" if pause else "Stopping after this step…")
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
