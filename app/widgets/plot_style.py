"""The look shared by every plot: titles and axes in the palette's colours, legends, tick labels,
and the loss-smoothing control."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QWidget


class SmoothingControl(QWidget):
    """ "Smoothing [slider] 0.60": the loss EMA weight, 0 (raw) to 0.99; shared by plots and compare."""

    changed = Signal(float)

    def __init__(self, weight: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slider = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=99)
        self.slider.setToolTip("Exponential moving average of the training loss (0: raw values)")
        self.label = QLabel()
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("Smoothing"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.label)
        self.set_value(weight)
        self.slider.valueChanged.connect(lambda v: self.changed.emit(self.set_value(v / 100)))

    def set_value(self, weight: float) -> float:
        """Show `weight` (clamped) without emitting; returns the clamped value."""
        weight = min(max(float(weight), 0.0), 0.999)
        self.slider.blockSignals(True)
        self.slider.setValue(round(weight * 100))
        self.slider.blockSignals(False)
        self.label.setText(f"{weight:.2f}")
        return weight


class ScientificAxis(pg.AxisItem):
    """Tick labels like 2.0e-04 for tiny values (learning rates), plain numbers otherwise."""

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        largest = max((abs(v * scale) for v in values), default=0.0)
        if 0 < largest < 1e-2:
            return [f"{v * scale:.1e}" for v in values]
        return super().tickStrings(values, scale, spacing)


def style_plot(plot: pg.PlotItem, title: str, palette: QPalette) -> None:
    """Title, axes and axis labels in the palette's text colour (pyqtgraph defaults to grey on black)."""
    text = palette.color(QPalette.ColorRole.Text)
    plot.setTitle(title, color=text.name(), size="10pt")
    for side in ("left", "bottom"):
        axis = plot.getAxis(side)
        axis.setPen(pg.mkPen(text))
        axis.setTextPen(pg.mkPen(text))
        if axis.labelText:
            axis.setLabel(axis.labelText, color=text.name())


def style_legend(legend: pg.LegendItem, palette: QPalette) -> None:
    background = QColor(palette.color(QPalette.ColorRole.Base))
    background.setAlpha(210)  # curves stay faintly visible under the legend
    legend.setBrush(pg.mkBrush(background))
    legend.setPen(pg.mkPen(palette.color(QPalette.ColorRole.Mid)))
    text = palette.color(QPalette.ColorRole.Text)
    legend.setLabelTextColor(text)
    for _sample, label in legend.items:
        label.setText(label.text, color=text.name())
