"""Histogram of per-row token lengths, with the max-length line and the truncated rows in amber.

Bins have an integer width (token counts are integers: float-width bins alias into uneven bars),
about BINS of them. Rows up to the max length and rows over it are counted separately with
np.bincount and stacked, so a bin straddling the line shows exactly how many rows get cut.
1M lengths draw in a few tens of milliseconds.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from app.widgets.plot_style import style_plot
from app.widgets.theme import muted

BINS = 40
BAR = "#2563eb"  # the loss colour of the run plots
OVER = "#f59e0b"  # amber: these rows are truncated
LINE = "#dc2626"


def _rows(n: int) -> str:
    return f"{n:,} row" if n == 1 else f"{n:,} rows"


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def length_bins(lo: int, hi: int, bins: int = BINS) -> tuple[int, int]:
    """(width, count) of integer-width bins starting at `lo` that cover lo..hi inclusive."""
    width = max(1, -(-(hi - lo + 1) // bins))
    return width, -(-(hi - lo + 1) // width)


class TokenHistogram(QWidget):
    """Token lengths of a dataset's rows against the max length; feed it with set_lengths."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._max_length: int | None = None
        self.canvas = pg.PlotWidget()
        self.canvas.setMinimumHeight(140)
        self.plot: pg.PlotItem = self.canvas.getPlotItem()
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)  # a summary, not something to explore
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "tokens per row")
        self.plot.setLabel("left", "rows")
        self._bars = pg.BarGraphItem(x0=[], x1=[], height=[], brush=BAR, pen=pg.mkPen(None))
        self._over = pg.BarGraphItem(x0=[], x1=[], height=[], brush=OVER, pen=pg.mkPen(None))
        self._line = pg.InfiniteLine(
            angle=90,
            movable=False,
            pen=pg.mkPen(LINE, width=2, style=pg.QtCore.Qt.PenStyle.DashLine),
            label="",
            labelOpts={"position": 0.92, "color": LINE, "anchors": [(0, 0), (0, 0)]},
        )
        for item in (self._bars, self._over, self._line):
            self.plot.addItem(item)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.summary)
        self.summary.setContentsMargins(6, 2, 6, 2)
        self._apply_palette()
        self.clear()

    # ---- public API -------------------------------------------------------------------

    def set_lengths(self, lengths: np.ndarray, max_length: int) -> None:
        """Show one token count per row (before truncation) against `max_length`."""
        lengths = np.asarray(lengths, dtype=np.int64).ravel()
        if not len(lengths):
            self.clear()
            self.summary.setText(f"No rows · max length {max_length:,}")
            return
        self._max_length = max_length
        lo, hi = int(lengths.min()), int(lengths.max())
        width, count = length_bins(lo, hi)
        index = (lengths - lo) // width
        over = lengths > max_length
        total = np.bincount(index, minlength=count)
        over_counts = np.bincount(index[over], minlength=count) if over.any() else np.zeros(count, np.int64)
        under = total - over_counts
        # Bars span the integer values they hold: [edge - 0.5, next edge - 0.5].
        left = lo + width * np.arange(count) - 0.5
        self._bars.setOpts(x0=left, x1=left + width, height=under, y0=np.zeros(count))
        self._over.setOpts(x0=left, x1=left + width, height=over_counts, y0=under)
        self._line.show()  # first: a hidden line's label ignores position changes
        # Between the last length that fits and the first that is cut.
        self._line.setPos(max_length + 0.5)
        self._line.label.setFormat(f"max length {max_length:,}")
        # Keep the line in view unless it is far beyond the data (it would squash the bars).
        x_lo, x_hi = lo - 0.5, hi + 0.5
        if max_length <= 2 * hi:
            x_lo, x_hi = min(x_lo, max_length), max(x_hi, max_length * 1.03)
        self.plot.setXRange(x_lo, x_hi, padding=0.02)
        self.plot.setYRange(0, int(total.max()) * 1.08)
        self.summary.setText(self._summary(lengths, int(over.sum()), max_length))

    def clear(self) -> None:
        self._max_length = None
        for bars in (self._bars, self._over):
            bars.setOpts(x0=[], x1=[], height=[], y0=[])
        self._line.hide()
        self.summary.setText("No token lengths yet")

    def summary_text(self) -> str:
        return self.summary.text()

    # ---- internals ------------------------------------------------------------------------

    @staticmethod
    def _summary(lengths: np.ndarray, over: int, max_length: int) -> str:
        # Same definitions as engine.data.stats: median as numpy has it, p95 an observed length.
        median = float(np.median(lengths))
        p95 = int(np.percentile(lengths, 95, method="inverted_cdf"))
        return (
            f"{_rows(len(lengths))} · median {_number(median)} · p95 {p95:,} · "
            f"max {int(lengths.max()):,} · {_rows(over)} over the max length (truncated)"
        )

    def _apply_palette(self) -> None:
        palette = self.palette()
        self.canvas.setBackground(palette.color(QPalette.ColorRole.Base))
        style_plot(self.plot, "", palette)
        self.summary.setStyleSheet(f"color: {muted(palette)};")
        self._line.label.setColor(QColor(LINE))
        backing = QColor(palette.color(QPalette.ColorRole.Base))
        backing.setAlpha(210)  # the label stays readable over the amber bars to its right
        self._line.label.fill = pg.mkBrush(backing)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt override)
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_palette()
        super().changeEvent(event)
