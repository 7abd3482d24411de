"""Live training plots: loss (raw, smoothed, eval), learning rate, grad norm, throughput, memory;
for preference runs (dpo, orpo, kto) also the rewards of chosen and rejected, their margin and accuracy.

Batches of events come from the run supervisor on the UI thread. They go into a
RunHistory (numpy buffers) at once; the curves are redrawn by a timer, at most once per
REDRAW_MS however many batches arrive, and only the curves whose series changed. A huge
batch (re-attaching to a long run) is parsed in slices across event-loop turns, so the
window keeps answering while a 100k-step history loads.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from app.widgets.plot_style import ScientificAxis, SmoothingControl, style_legend, style_plot
from app.widgets.theme import muted
from engine.runs.history import ALL_SERIES, PREFERENCE_SERIES, SERIES, RunHistory, smooth

# Mid-tone colours that read on both the light and the dark palette.
COLORS = {
    "loss": "#2563eb",
    "eval_loss": "#f97316",
    "learning_rate": "#a855f7",
    "grad_norm": "#ef4444",
    "tokens_per_second": "#14b8a6",
    "peak_memory_mb": "#eab308",
    "reward_chosen": "#16a34a",
    "reward_rejected": "#dc2626",
    "reward_margin": "#2563eb",
    "reward_accuracy": "#7c3aed",
    "eval_reward_margin": "#f97316",
    "eval_reward_accuracy": "#f97316",
}
TITLES = {
    "learning_rate": "Learning rate",
    "grad_norm": "Gradient norm",
    "tokens_per_second": "Throughput (tokens/s)",
    "peak_memory_mb": "Peak memory (MB)",
    # The title is the legend (a legend box would cover the curves' ends in a plot this small).
    "rewards": "Rewards: <span style='color:#16a34a'>chosen</span> vs "
    "<span style='color:#dc2626'>rejected</span>",
    "reward_margin": "Reward margin (chosen − rejected)",
    "reward_accuracy": "Reward accuracy (chosen ahead)",
}
MEMORY_KINDS = {"cuda_allocated": "GPU allocated", "process_rss": "process RSS"}
CURVES = ("loss", "loss_smoothed", *SERIES[1:], *PREFERENCE_SERIES)
# The preference row's plots and the curves each holds (eval points on the train curve's plot).
PREFERENCE_PLOTS = {
    "rewards": ("reward_chosen", "reward_rejected"),
    "reward_margin": ("reward_margin", "eval_reward_margin"),
    "reward_accuracy": ("reward_accuracy", "eval_reward_accuracy"),
}


class StepViewBox(pg.ViewBox):
    """X-linked views show the same steps whatever their width on screen.

    pyqtgraph lines linked views up by screen position when they overlap, which makes the
    half-width plots under the full-width loss plot show half of the steps each.
    """

    def linkedViewChanged(self, view: pg.ViewBox, axis: int) -> None:  # noqa: N802 (pyqtgraph override)
        if axis != pg.ViewBox.XAxis or self.linksBlocked or view is None:
            super().linkedViewChanged(view, axis)
            return
        view.blockLink(True)
        try:
            self.enableAutoRange(pg.ViewBox.XAxis, False)
            self.setXRange(*view.viewRange()[0], padding=0)
        finally:
            view.blockLink(False)


class TimedCanvas(pg.GraphicsLayoutWidget):
    """Remembers how long its last paint took: redraws are spaced out by that, not only by setData."""

    paint_ms = 0.0

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt override)
        start = time.perf_counter()
        super().paintEvent(event)
        self.paint_ms = (time.perf_counter() - start) * 1000


class RunPlots(QWidget):
    """The live plots of one run; feed it with add_events(batch)."""

    REDRAW_MS = 100  # at most one setData per curve per interval
    SLICE = 2000  # events parsed per event-loop turn when a large batch arrives
    SLICE_BUDGET_S = 0.010  # parse slices for at most this long before letting the loop run

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = RunHistory()
        self.draw_counts: dict[str, int] = dict.fromkeys(CURVES, 0)  # setData calls (tests, benchmark)
        self.redraw_ms: deque[float] = deque(maxlen=1000)
        self._smoothing = 0.6
        self._dirty: set[str] = set()
        self._pending: deque[list[dict]] = deque()
        self._last_redraw = 0.0
        self._interval_ms = self.REDRAW_MS
        self._redraw_timer = QTimer(self, singleShot=True, timeout=self._on_redraw)
        self._drain_timer = QTimer(self, singleShot=True, interval=0, timeout=self._on_drain)
        self._build()
        self._apply_palette()

    # ---- public API -------------------------------------------------------------------

    def add_events(self, events: list[dict]) -> None:
        """Take a batch of run events (any types; non-plot events are ignored)."""
        if not self._pending and len(events) <= self.SLICE:
            self._apply(events)
            return
        self._pending.extend(events[i : i + self.SLICE] for i in range(0, len(events), self.SLICE))
        if not self._drain_timer.isActive():
            self._drain_timer.start()

    def clear(self) -> None:
        self._pending.clear()
        self.history = RunHistory()
        self._dirty = set(ALL_SERIES)
        self._legend.removeItem(self._curves["eval_loss"])
        self._show_preference(False)
        # The memory title forgets its GPU/RSS kind. Only that plot: restyling all of them relays
        # out the whole canvas (~0.2 s here).
        style_plot(self._plots["peak_memory_mb"], self._title("peak_memory_mb"), self.palette())
        self._schedule_redraw()

    def set_smoothing(self, weight: float) -> None:
        """Smoothing weight of the loss curve, 0 (raw) to 0.999; only that curve is recomputed."""
        self._smoothing = self._smoothing_control.set_value(weight)
        self._dirty.add("loss_smoothed")
        self._schedule_redraw()

    def smoothing(self) -> float:
        return self._smoothing

    def curve_data(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The full data set of a curve (one of CURVES), as handed to pyqtgraph."""
        item = self._curves[name]
        if item.xData is None:
            return np.empty(0), np.empty(0)
        return item.xData, item.yData

    def preference_shown(self) -> bool:
        """Whether the preference row (rewards, margin, accuracy) is on the canvas."""
        return self._preference_row.scene() is not None

    def is_loading(self) -> bool:
        """Whether a large batch is still being parsed."""
        return bool(self._pending)

    # ---- building -------------------------------------------------------------------------

    def _build(self) -> None:
        self._smoothing_control = SmoothingControl(self._smoothing)
        self._smoothing_control.slider.setFixedWidth(160)
        self._smoothing_control.changed.connect(self.set_smoothing)
        top = QHBoxLayout()
        top.setContentsMargins(8, 4, 8, 0)
        top.addStretch(1)
        top.addWidget(self._smoothing_control)

        self._canvas = TimedCanvas()
        self._canvas.ci.setContentsMargins(4, 4, 4, 4)
        # An overlay, not a stacked page: the canvas stays laid out, so the first points do not pay
        # pyqtgraph's first layout (~0.3-0.8 s here) inside a redraw.
        self._empty = QLabel("No metrics yet", self._canvas, alignment=Qt.AlignmentFlag.AlignCenter)
        self._empty.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self._canvas, 1)

        loss = self._canvas.addPlot(row=0, col=0, colspan=2, viewBox=StepViewBox())
        self._plots = {"loss": loss}
        for i, name in enumerate(SERIES[2:]):
            axes = {"left": ScientificAxis("left")} if name == "learning_rate" else None
            self._plots[name] = self._canvas.addPlot(
                row=2 + i // 2, col=i % 2, viewBox=StepViewBox(), axisItems=axes
            )
        # Row 1 is the preference row, put on the canvas only for preference runs (an empty row takes
        # no room); its three plots share one row of the two-column grid.
        self._preference_row = pg.GraphicsLayout()
        self._preference_row.setContentsMargins(0, 0, 0, 0)
        for col, name in enumerate(PREFERENCE_PLOTS):
            self._plots[name] = self._preference_row.addPlot(row=0, col=col, viewBox=StepViewBox())
        self._canvas.ci.layout.setRowStretchFactor(0, 3)  # the loss is what people watch
        for row in (2, 3):
            self._canvas.ci.layout.setRowStretchFactor(row, 2)
        for plot in self._plots.values():
            plot.setDownsampling(auto=True, mode="peak")
            plot.setClipToView(True)
            # A grid only where values are read off: pyqtgraph's grid costs ~10 ms per plot and paint.
            plot.showGrid(x=plot is loss, y=plot is loss, alpha=0.15)
            plot.setMenuEnabled(False)
            if plot is not loss:
                plot.setXLink(loss)
        for name in ("loss", "tokens_per_second", "peak_memory_mb"):
            self._plots[name].setLabel("bottom", "step")
        for name in ("learning_rate", "grad_norm", *PREFERENCE_PLOTS):  # the plots below carry the steps
            self._plots[name].getAxis("bottom").setStyle(showValues=False)
        self._legend = loss.addLegend(offset=(-10, 10))

        self._curves: dict[str, pg.PlotDataItem] = {}
        blue = QColor(COLORS["loss"])
        faint = QColor("#60a5fa")  # a lighter blue, translucent: the smoothed line stands out on it
        faint.setAlpha(70)
        # Width-1 pens for the dense curves: wider lines take QPainter's slow stroking path.
        # autoDownsampleFactor 1.5: ~3 points per pixel column (peak mode keeps min and max).
        dense = {"autoDownsampleFactor": 1.5, "skipFiniteCheck": True}
        # An invisible segment from step 0 to max_steps: the autorange then shows the whole planned
        # run, the curve grows into it, and the step axes stay put instead of being redone each frame.
        self._span = loss.plot(pen=pg.mkPen(0, 0, 0, 0))
        self._curves["loss"] = loss.plot(pen=pg.mkPen(faint, width=1), name="training loss", **dense)
        self._curves["loss_smoothed"] = loss.plot(pen=pg.mkPen(blue, width=2), name="smoothed", **dense)
        orange = COLORS["eval_loss"]
        self._curves["eval_loss"] = loss.plot(
            pen=pg.mkPen(orange, width=1.5),
            symbol="o",
            symbolSize=6,
            symbolBrush=orange,
            symbolPen=None,
            **dense,
        )
        for name in SERIES[2:]:
            self._curves[name] = self._plots[name].plot(pen=pg.mkPen(COLORS[name], width=1), **dense)
        # Peak mode keeps spikes of the raw curves; on the smoothed one it would draw its residual
        # noise as a band, so that one is averaged per pixel column and stays a line.
        self._curves["loss_smoothed"].setDownsampling(auto=True, method="mean")
        # Memory is read against zero ("how much of my GPU"): a fill level makes the autorange
        # include 0. No brush: filling the area would cost ~20 ms a paint at 100k points.
        self._curves["peak_memory_mb"].setFillLevel(0)
        # The same for the learning rate: a constant schedule would otherwise be centred in a
        # ±0.5 range whose ticks all read "0".
        self._curves["learning_rate"].setFillLevel(0)
        self._build_preference_curves()

    def _build_preference_curves(self) -> None:
        """Chosen vs rejected rewards; margin and accuracy with their eval points and a reference line."""
        for plot_name, names in PREFERENCE_PLOTS.items():
            plot = self._plots[plot_name]
            for name in names:
                colour = COLORS[name]
                points = {"symbol": "o", "symbolSize": 6, "symbolBrush": colour, "symbolPen": None}
                self._curves[name] = plot.plot(
                    pen=pg.mkPen(colour, width=1.5 if name.startswith("eval_") else 1),
                    autoDownsampleFactor=1.5,
                    skipFiniteCheck=True,
                    **(points if name.startswith("eval_") else {}),
                )
        # A margin above 0 (accuracy above 0.5) means the model prefers the chosen replies.
        dashed = pg.mkPen("#9ca3af", width=1, style=Qt.PenStyle.DashLine)
        self._plots["reward_margin"].addItem(pg.InfiniteLine(0.0, angle=0, pen=dashed))
        self._plots["reward_accuracy"].addItem(pg.InfiniteLine(0.5, angle=0, pen=dashed))
        self._plots["reward_accuracy"].setYRange(0.0, 1.0, padding=0.05)
        self._plots["reward_accuracy"].enableAutoRange(pg.ViewBox.YAxis, False)

    def _show_preference(self, shown: bool) -> None:
        if shown == self.preference_shown():
            return
        # Row 1 stretches only while it holds the row: an empty stretching row would still take room.
        self._canvas.ci.layout.setRowStretchFactor(1, 2 if shown else 0)
        if shown:
            self._canvas.ci.addItem(self._preference_row, row=1, col=0, colspan=2)
        else:
            self._canvas.ci.removeItem(self._preference_row)

    def _apply_palette(self) -> None:
        """Background and text from the widget palette, so both themes read well."""
        palette = self.palette()
        self._canvas.setBackground(palette.color(QPalette.ColorRole.Base))
        for name, plot in self._plots.items():
            style_plot(plot, self._title(name), palette)
        style_legend(self._legend, palette)
        self._empty.setStyleSheet(f"color: {muted(palette)}; font-size: 14px;")

    def _title(self, name: str) -> str:
        if name == "loss":
            return "Training loss"
        if name == "peak_memory_mb" and self.history.memory_kind in MEMORY_KINDS:
            return f"Peak memory (MB), {MEMORY_KINDS[self.history.memory_kind]}"
        return TITLES[name]

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self._empty.setGeometry(self._canvas.rect())

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt override)
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_palette()
        super().changeEvent(event)

    # ---- updating -------------------------------------------------------------------------

    def _apply(self, events: list[dict]) -> None:
        memory_kind = self.history.memory_kind
        changed = self.history.add_events(events)
        if changed:
            self._dirty |= changed
            self._schedule_redraw()
        if self.history.memory_kind != memory_kind:
            style_plot(self._plots["peak_memory_mb"], self._title("peak_memory_mb"), self.palette())

    def _on_drain(self) -> None:
        start = time.perf_counter()
        while self._pending and time.perf_counter() - start < self.SLICE_BUDGET_S:
            self._apply(self._pending.popleft())
        if self._pending:
            self._drain_timer.start()

    def _schedule_redraw(self) -> None:
        if self._redraw_timer.isActive():
            return
        since_ms = (time.perf_counter() - self._last_redraw) * 1000
        self._redraw_timer.start(int(max(0.0, self._interval_ms - since_ms)))

    def _on_redraw(self) -> None:
        start = time.perf_counter()
        dirty, self._dirty = self._dirty, set()
        if "loss" in dirty:
            dirty.add("loss_smoothed")
        for name in CURVES:
            if name not in dirty:
                continue
            if name == "loss_smoothed":
                x, y = self.history.series("loss")
                x, y = x.copy(), smooth(y, self._smoothing)
            else:
                # Copies: the history reuses its buffers after a rewind, pyqtgraph keeps what it gets.
                x, y = (a.copy() for a in self.history.series(name))
            if name == "eval_loss" and (len(x) <= 200) != (self._curves[name].opts["symbol"] is not None):
                # Markers cost ~10 ms per redraw at hundreds of evals, and merge into a line anyway.
                self._curves[name].setSymbol("o" if len(x) <= 200 else None)
            self._curves[name].setData(x, y, skipFiniteCheck=True)
            self.draw_counts[name] += 1
        steps, losses = self.history.series("loss")
        if self.history.max_steps and len(losses):
            self._span.setData([0.0, float(self.history.max_steps)], [losses[-1], losses[-1]])
        else:
            self._span.setData([], [])
        # Settle the autoranges now: left to the paint, a range change there asks for a second
        # full paint (axes and all) right after the first.
        for plot in self._plots.values():
            plot.vb.prepareForPaint()
        self._show_preference(self.history.has_preference())
        evals = self._curves["eval_loss"]
        if evals.xData is not None and len(evals.xData) and self._legend.getLabel(evals) is None:
            self._legend.addItem(evals, "eval loss")  # only once there is one: many runs have no eval
            self._apply_palette()
        has_points = any(len(self.history.series(name)[0]) for name in ALL_SERIES)
        self._empty.setVisible(not has_points)
        self._last_redraw = time.perf_counter()
        took_ms = (self._last_redraw - start) * 1000
        self.redraw_ms.append(took_ms)
        # A slow frame (huge history, slow machine) spaces the next one out: plots take at most
        # ~25% of the UI thread, counting the paint that follows (measured on the last one).
        self._interval_ms = max(self.REDRAW_MS, 4 * (took_ms + self._canvas.paint_ms))
