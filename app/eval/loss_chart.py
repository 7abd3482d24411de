"""Validation loss against step for one run, its checkpoints marked and the best one starred,
so overfitting (validation loss turning up while the training loss still falls) shows at a glance.

The series come from the run's events (engine.runs.history), the checkpoints from its folder
(engine.runs.checkpoints: complete ones only). The best checkpoint is RUN_DIR/best.json when the
run wrote one, else the checkpoint step with the lowest validation loss.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from app.widgets.plot_style import style_legend, style_plot
from app.widgets.run_labels import run_title
from app.widgets.theme import muted
from engine.runs.best import BEST_NAME, read_best
from engine.runs.checkpoints import complete_checkpoints
from engine.runs.history import load_history

EVAL_COLOR = "#f97316"  # the eval loss's colour in the Train tab's plots
TRAIN_COLOR = "#60a5fa"
BEST_COLOR = "#2e8b57"
NO_VALIDATION = "This run had no validation data — hold out a share in Train › Data to see overfitting."


def best_checkpoint(
    run_dir: Path, steps: np.ndarray, losses: np.ndarray, checkpoints: list[int]
) -> tuple[int, float, str] | None:
    """(step, validation loss, where from) of the best checkpoint, or None."""
    best = read_best(run_dir)  # trusted only while the checkpoint it names is complete
    if best is not None:
        return best["step"], best["eval_loss"], BEST_NAME
    at = {int(s): float(v) for s, v in zip(steps, losses, strict=True)}
    scored = [(at[s], s) for s in checkpoints if s in at]
    if not scored:
        return None
    loss, step = min(scored)
    return step, loss, "lowest validation loss among the checkpoints"


_SOURCES = ("events.jsonl", BEST_NAME, "checkpoints")


def _version(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    # A folder's mtime changes when an entry is added or removed (a checkpoint saved or pruned).
    return stat.st_mtime_ns, stat.st_size


class LossChart(QWidget):
    """`show_run(run_dir)` draws the run; `show_run(None)` clears it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run_dir: Path | None = None
        self._drawn: tuple | None = None
        self.checkpoint_steps: list[int] = []
        self.best: tuple[int, float, str] | None = None
        self._lines: list[pg.InfiniteLine] = []
        self.canvas = pg.PlotWidget(self)
        self.plot = self.canvas.getPlotItem()
        self.plot.setMenuEnabled(False)
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss")
        self.legend = self.plot.addLegend(offset=(-10, 10))
        self.train_curve = self.plot.plot(pen=pg.mkPen(QColor(TRAIN_COLOR), width=1), name="training loss")
        self.eval_curve = self.plot.plot(
            pen=pg.mkPen(EVAL_COLOR, width=2),
            symbol="o",
            symbolSize=6,
            symbolBrush=EVAL_COLOR,
            symbolPen=None,
            name="validation loss",
        )
        self.best_marker = self.plot.plot(
            pen=None,
            symbol="star",
            symbolSize=18,
            symbolBrush=BEST_COLOR,
            symbolPen=None,
            name="best checkpoint",
        )
        self.empty = QLabel(self.canvas)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.empty.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.caption = QLabel(self)
        self.caption.setWordWrap(True)
        self.run_picker = QComboBox(self)
        self.run_picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.run_picker.currentIndexChanged.connect(self._on_run_picked)
        picker = QHBoxLayout()
        picker.addWidget(QLabel("Run", self))
        picker.addWidget(self.run_picker)
        picker.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(picker)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.caption)
        self._apply_palette()
        self.show_run(None)

    def show_runs(self, runs, keep: bool) -> None:
        """Offer `runs` (RunSummary) in the run picker and draw the picked one; keep=True keeps the pick."""
        current = self.run_picker.currentData() if keep else None
        self.run_picker.blockSignals(True)
        self.run_picker.clear()
        for run in runs:
            self.run_picker.addItem(run_title(run), str(run.path))
        index = self.run_picker.findData(current) if current else -1
        self.run_picker.setCurrentIndex(max(index, 0) if self.run_picker.count() else -1)
        self.run_picker.blockSignals(False)
        self._on_run_picked()

    def select_run(self, run_dir: Path) -> None:
        index = self.run_picker.findData(str(run_dir))
        if index >= 0:
            self.run_picker.setCurrentIndex(index)

    def _on_run_picked(self, *_args) -> None:
        value = self.run_picker.currentData()
        self.show_run(Path(value) if value else None, self.run_picker.currentText())

    def show_run(self, run_dir: Path | None, title: str = "") -> None:
        """Draw `run_dir`; a no-op when nothing it is drawn from changed (the page calls this on
        every workspace scan, and a long run's events take a while to read)."""
        self.run_dir = Path(run_dir) if run_dir else None
        key = None
        if self.run_dir is not None:
            key = (self.run_dir, title, *(_version(self.run_dir / name) for name in _SOURCES))
            if key == self._drawn:
                return
        self._drawn = key
        for line in self._lines:
            self.plot.removeItem(line)
        self._lines, self.checkpoint_steps, self.best = [], [], None
        empty_arrays = (np.empty(0), np.empty(0))
        history = load_history(self.run_dir) if self.run_dir else None
        train = history.series("loss") if history else empty_arrays
        steps, losses = history.series("eval_loss") if history else empty_arrays
        steps, losses = steps.copy(), losses.copy()
        self.train_curve.setData(*(a.copy() for a in train))
        self.eval_curve.setData(steps, losses)
        self.plot.setTitle(
            f"Validation loss · {title}" if title else "Validation loss",
            color=self.palette().color(QPalette.ColorRole.Text).name(),
            size="10pt",
        )
        if self.run_dir is None:
            self._show_empty("Choose a run to see its validation loss.", "")
            return
        if not len(steps):
            self._show_empty(NO_VALIDATION, "")
            return
        self.checkpoint_steps = [step for step, _path in complete_checkpoints(self.run_dir)]
        pen = pg.mkPen(muted(self.palette()), width=1, style=Qt.PenStyle.DashLine)
        for step in self.checkpoint_steps:
            line = pg.InfiniteLine(pos=step, angle=90, pen=pen)
            line.setToolTip(f"checkpoint at step {step}")
            self.plot.addItem(line)
            self._lines.append(line)
        self.best = best_checkpoint(self.run_dir, steps, losses, self.checkpoint_steps)
        self.best_marker.setData(*([self.best[0]], [self.best[1]]) if self.best else ([], []))
        self.empty.hide()
        saved = (
            f"{len(self.checkpoint_steps)} checkpoint(s), dashed"
            if self.checkpoint_steps
            else "no checkpoints"
        )
        if self.best:
            step, loss, source = self.best
            best = f"Best checkpoint: step {step}, validation loss {loss:.4f} ({source})."
        else:
            best = "No checkpoint has a validation loss at its step."
        lowest = int(np.argmin(losses))
        trend = ""
        if lowest < len(losses) - 1 and losses[-1] > losses[lowest] * 1.02:
            trend = (
                f" Validation loss rose from {losses[lowest]:.4f} at step {steps[lowest]:g} to "
                f"{losses[-1]:.4f} at step {steps[-1]:g}: the run overfitted after step {steps[lowest]:g}."
            )
        self.caption.setText(f"{best} {len(steps)} validation points, {saved}.{trend}")

    def _show_empty(self, text: str, caption: str) -> None:
        self.best_marker.setData([], [])
        self.empty.setText(text)
        self.empty.show()
        self.empty.setGeometry(self.canvas.rect())
        self.caption.setText(caption)

    def message(self) -> str:
        """The empty-state text when shown, else ""."""
        return self.empty.text() if not self.empty.isHidden() else ""

    def _apply_palette(self) -> None:
        palette = self.palette()
        self.canvas.setBackground(palette.color(QPalette.ColorRole.Base))
        style_plot(self.plot, self.plot.titleLabel.text or "Validation loss", palette)
        style_legend(self.legend, palette)
        self.empty.setStyleSheet(f"color: {muted(palette)}; font-size: 14px; padding: 24px;")
        self.caption.setStyleSheet(f"color: {muted(palette)};")

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self.empty.setGeometry(self.canvas.rect())

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt override)
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_palette()
        super().changeEvent(event)
