"""The Evaluate tab: did tuning help, and what did it cost?

Left: the runs to evaluate (final adapters, checkpoints), the Evaluate button and its progress,
and the project's past reports. Right: the scorecard of the report shown, and below it the
per-item answers and the validation loss per checkpoint. The evaluation itself is
`whetstone-engine eval` in a child process (app.infra.engine_process); its report is a JSON file.
"""

from __future__ import annotations

import html
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.eval.items_view import ItemsView
from app.eval.loss_chart import LossChart
from app.eval.reports import eval_command, eval_sets, find_reports, load_report, new_output_path
from app.eval.run_picker import RunPicker
from app.eval.scorecard import Scorecard
from app.infra.engine_process import EngineProcess
from app.widgets.theme import BETTER_COLOR, WORSE_COLOR, muted
from engine.cli.protocol import EXIT_DONE, error_message, stopped_on_request
from engine.errors import UserError
from engine.workspace import load_project_config


class EvalPage(QWidget):
    reportReady = Signal(str)  # the path of a report an evaluation just wrote
    evaluateAfterRunsChanged = Signal(bool)  # the user's choice, for the window's preferences
    max_new_tokens: int | None = None  # longest answer generated; None: the engine's default

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = "Evaluate"
        self.project = None
        self.report: dict | None = None
        self.report_path: Path | None = None
        self.process: EngineProcess | None = None
        self._done_path: str | None = None
        self._queue: list[list[Path]] = []

        self.runs = RunPicker(self)
        self.sets_label = QLabel(self, wordWrap=True)
        self.evaluate_button = QPushButton("Evaluate", self)
        self.evaluate_button.setToolTip(
            "Score the base model and the ticked runs on the project's eval sets, validation loss, "
            "the general-ability (forgetting) probe and the bias pairs"
        )
        self.cancel_button = QPushButton("Cancel", self, enabled=False)
        self.after_runs = QCheckBox("Evaluate each run when it ends", self)
        self.after_runs.setToolTip(
            "When a run of this window finishes, score it against the base model on the project's "
            "eval sets and the general-ability probe, in the background; the run list shows the headline"
        )
        self.after_runs.setChecked(True)
        self.after_runs.toggled.connect(self.evaluateAfterRunsChanged)
        self.progress = QProgressBar(self, maximum=100, textVisible=False)
        self.progress.setFixedHeight(8)
        self.status = QLabel(self, wordWrap=True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setTextFormat(Qt.TextFormat.RichText)  # escaped text: ' must not show as &#x27;
        self.reports = QListWidget(self)
        self.reports.setWordWrap(True)
        self.reports.setToolTip("Past evaluations of this project's runs, newest first")
        self.report_title = QLabel(self)  # one line: a wrapping label asks for the height of three
        # What the report's numbers leave out (skipped eval-set lines, no validation loss), or hidden.
        self.report_notes = QLabel(self, wordWrap=True)
        self.report_notes.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.report_notes.setStyleSheet(f"color: {WORSE_COLOR};")
        self.report_notes.hide()
        self.scorecard = Scorecard(self)
        self.items = ItemsView(self)
        self.chart = LossChart(self)
        self._build()
        self.evaluate_button.clicked.connect(self.evaluate)
        self.cancel_button.clicked.connect(self.cancel)
        self.reports.currentItemChanged.connect(self._on_report_chosen)
        self.runs.itemChanged.connect(self._name_button)
        self.show_project(None)

    def _build(self) -> None:
        left = QWidget(self)
        column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(QLabel("<b>Runs to evaluate</b>", left))
        column.addWidget(self.runs, 3)
        column.addWidget(self.sets_label)
        buttons = QHBoxLayout()
        buttons.addWidget(self.evaluate_button, 1)
        buttons.addWidget(self.cancel_button)
        column.addLayout(buttons)
        column.addWidget(self.after_runs)
        column.addWidget(self.progress)
        column.addWidget(self.status)
        column.addSpacing(6)
        column.addWidget(QLabel("<b>Reports</b>", left))
        column.addWidget(self.reports, 2)

        self.card = top = QWidget(self)
        card = QVBoxLayout(top)
        card.setContentsMargins(0, 0, 0, 0)
        card.addWidget(self.report_title)
        card.addWidget(self.report_notes)
        card.addWidget(self.scorecard, 1)
        self.tabs = QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.items, "Answers")
        self.tabs.addTab(self.chart, "Validation loss")
        self.right = right = QSplitter(Qt.Orientation.Vertical, self)
        right.addWidget(top)
        right.addWidget(self.tabs)
        right.setChildrenCollapsible(False)
        right.setStretchFactor(1, 1)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([300, 1100])
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(split)

    @property
    def evaluate_after_runs(self) -> bool:
        return self.after_runs.isChecked()

    def set_evaluate_after_runs(self, on: bool) -> None:
        self.after_runs.setChecked(on)

    # ---- the project ------------------------------------------------------------------------
    def show_project(self, project) -> None:
        same = project is not None and self.project is not None and project.path == self.project.path
        self.project = project
        usable = project is not None and not project.problem
        self.runs.show_runs(project.runs if usable else (), keep=same)
        self._name_button()
        self.evaluate_button.setEnabled(usable and not self.is_running())
        sets = [p.stem for p in eval_sets(project.path)] if usable else []
        self.sets_label.setText(
            f"Eval sets: {', '.join(sets) if sets else 'none (add JSONL files to eval-sets/)'} "
            "· general-ability and bias probes"
            if usable
            else ""
        )
        self.sets_label.setStyleSheet(f"color: {muted(self.palette())};")
        if not self.is_running() and not same:
            self._set_status("" if usable else "No project selected. Pick one on the left.")
        self.chart.show_runs(project.runs if usable else (), keep=same)
        self._fill_reports(keep=same)

    def _fill_reports(self, keep: bool, select: Path | None = None) -> None:
        shown = select or (self.report_path if keep else None)
        entries = find_reports(self.project.path, [r.path for r in self.project.runs]) if self.project else []
        self.reports.blockSignals(True)
        self.reports.clear()
        for entry in entries:
            item = QListWidgetItem(f"{entry.title}\n{entry.headline}" if entry.headline else entry.title)
            item.setData(Qt.ItemDataRole.UserRole, str(entry.path))
            item.setToolTip(str(entry.path))
            self.reports.addItem(item)
        self.reports.blockSignals(False)
        paths = [
            Path(self.reports.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self.reports.count())
        ]
        if shown in paths:
            self.reports.blockSignals(True)
            self.reports.setCurrentRow(paths.index(shown))
            self.reports.blockSignals(False)
            if shown != self.report_path:
                self.show_report_file(shown)
        elif paths and (not keep or self.report_path is None):
            self.reports.setCurrentRow(0)  # shows the newest
        elif not paths:
            self._show_report(None, None)

    def _name_button(self, *_args) -> None:
        """Say what Evaluate will score: with nothing ticked, the base model alone."""
        self.evaluate_button.setText("Evaluate" if self.runs.checked() else "Evaluate the base model")

    # ---- reports ------------------------------------------------------------------------------
    def _on_report_chosen(self, item: QListWidgetItem | None, _previous=None) -> None:
        if item is not None:
            self.show_report_file(Path(item.data(Qt.ItemDataRole.UserRole)))

    def show_report_file(self, path: Path) -> bool:
        try:
            report = load_report(path)
        except ValueError as exc:
            self._set_status(str(exc), error=True)
            return False
        self._show_report(report, Path(path))
        return True

    def _show_report(self, report: dict | None, path: Path | None) -> None:
        self.report, self.report_path = report, path
        self.scorecard.show_report(report)
        self.items.show_report(report)
        notes = [str(note) for note in (report or {}).get("notes") or []]
        self.report_notes.setText("\n".join(f"⚠ {note}" for note in notes))
        self.report_notes.setVisible(bool(notes))
        if report is None:
            self.report_title.setText(
                "No evaluation yet: tick runs on the left and press Evaluate."
                if self.runs.has_runs()
                else "No evaluation yet: press Evaluate to score the base model."
            )
            return
        settings = report.get("settings") or {}
        model = Path(str(settings.get("model") or "?")).name
        try:  # the engine writes UTC; the list and this title show local time
            when = datetime.fromisoformat(str(report.get("created"))).astimezone().strftime("%d %b %Y %H:%M")
        except ValueError:
            when = ""
        self.report_title.setText(
            f"<b>Scorecard</b> · {html.escape(when)} · base model {html.escape(model)}"
            f" · {html.escape(str(settings.get('device') or ''))}"
        )
        self._fit_scorecard()
        runs = [m.get("run") for m in report["models"] if m.get("run")]
        if runs:
            self.chart.select_run(Path(runs[-1]))

    def showEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        # A report shown while the tab was hidden was fitted to a splitter not laid out yet: the
        # scorecard got two rows and a scroll bar (seen after a start on another tab).
        if self.report is not None:
            self._fit_scorecard()

    def _fit_scorecard(self) -> None:
        """Give the scorecard the height of its rows (no scroll bar), the answers the rest."""
        notes = 0
        if self.report_notes.text():  # its wrapped height, and the layout's gap above it
            width = max(self.card.width(), 400)
            notes = self.report_notes.heightForWidth(width) + self.card.layout().spacing()
        wanted = self.report_title.sizeHint().height() + notes + self.scorecard.preferred_height() + 8
        self.card.setMaximumHeight(wanted)  # never more: the splitter gives the rest to the answers
        total = sum(self.right.sizes()) or self.right.height()
        self.right.setSizes([min(wanted, total // 2), total - min(wanted, total // 2)])

    # ---- evaluating ---------------------------------------------------------------------------
    def evaluate(self) -> None:
        self.evaluate_runs(self.runs.checked())

    def evaluate_runs(self, run_dirs: list[Path]) -> bool:
        """Evaluate the base and `run_dirs` (run or checkpoint folders) on the project's sets and
        the forgetting probe; queued when an evaluation is running. False when it cannot start."""
        if self.is_running():
            self._queue.append(list(run_dirs))
            return True
        if self.project is None:
            return False
        try:
            base = load_project_config(self.project.path).model.path
        except UserError as exc:
            self._set_status(exc.one_line(), error=True)
            return False
        if not base:
            self._set_status(
                "This project has no base model yet: choose one in the Train tab first.", error=True
            )
            return False
        output = new_output_path(self.project.path)
        output.parent.mkdir(parents=True, exist_ok=True)
        adapters = [Path(p) for p in run_dirs]
        args = eval_command(base, adapters, eval_sets(self.project.path), output, self.max_new_tokens)
        self._done_path = None
        self.process = EngineProcess(args, self)
        self.process.message.connect(self.on_message)
        self.process.ended.connect(self.on_ended)
        self._running(True)
        self.progress.setValue(0)
        self._set_status("Starting the engine…")
        self.process.start()
        return True

    def cancel(self) -> None:
        self._queue.clear()
        if self.process is not None:
            self._set_status("Cancelling…")
            self.process.kill()

    def is_running(self) -> bool:
        return self.process is not None and self.process.is_running()

    def on_message(self, message: dict) -> None:
        if "progress" in message:
            try:
                self.progress.setValue(round(float(message["progress"]) * 100))
            except (TypeError, ValueError):
                pass
            self._set_status(str(message.get("message", "")))
        if "done" in message:
            self._done_path = str(message["done"])

    def on_ended(self, code: int, line: str) -> None:
        self.process = None
        self._running(False)
        if code == EXIT_DONE and self._done_path:
            self.progress.setValue(100)
            path = Path(self._done_path)
            if self.show_report_file(path):
                self._set_status(f"Evaluated: {path.name}.", ok=True)
                if self.project is not None:
                    self._fill_reports(keep=True, select=path)
                self.reportReady.emit(str(path))
        elif stopped_on_request(code, line):
            self.progress.setValue(0)
            self._set_status("Evaluation cancelled.")
        else:
            self.progress.setValue(0)
            self._set_status(error_message(line) or f"The evaluation ended with code {code}.", error=True)
        if self._queue:
            self.evaluate_runs(self._queue.pop(0))

    def _running(self, running: bool) -> None:
        self.evaluate_button.setEnabled(not running and self.project is not None and not self.project.problem)
        self.cancel_button.setEnabled(running)

    def _set_status(self, text: str, ok: bool = False, error: bool = False) -> None:
        color = WORSE_COLOR if error else (BETTER_COLOR if ok else "")
        self.status.setText(
            f"<span style='color:{color}'>{html.escape(text)}</span>" if color else html.escape(text)
        )

    def shutdown(self) -> None:
        """For closing the window: stop a running evaluation."""
        self._queue.clear()
        if self.process is not None:
            self.process.stop_now()
