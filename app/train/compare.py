"""Compare runs: their training-loss curves on one plot, and the settings that differ.

Histories and configs are read on the task runner's threads (a long run's events.jsonl
is tens of MB); the dialog shows "Loading…" until every run has answered. A run whose
config.toml is missing or damaged still plots; the settings table says why it cannot
compare that run instead.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QColor, QIcon, QPalette, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.infra.tasks import TaskRunner
from app.widgets.plot_style import SmoothingControl, style_legend, style_plot
from app.widgets.run_labels import run_title
from app.widgets.theme import muted
from engine.errors import UserError
from engine.runs.history import RunHistory, config_diff, load_history, load_run_config, smooth

# Mid-tone colours that read on both the light and the dark palette, one per run.
RUN_COLORS = (
    "#3b82f6",
    "#f97316",
    "#22c55e",
    "#ef4444",
    "#a855f7",
    "#14b8a6",
    "#ec4899",
    "#eab308",
    "#64748b",
    "#84cc16",
)


def _loader(index: int, run_dir: Path) -> Callable:
    """A task function: (index, history, config dict or the reason there is none)."""

    def load(_progress, _cancelled) -> tuple[int, RunHistory, dict | str]:
        history = load_history(run_dir)
        try:
            config: dict | str = load_run_config(run_dir)
        except UserError as exc:
            config = f"{exc.message} {exc.hint}".strip()
        return index, history, config

    return load


def _run_names(run_dirs: list[Path]) -> list[str]:
    titles = [run_title(p) for p in run_dirs]
    folders = [p.name for p in run_dirs]
    # Runs of different projects may share a folder name: add the project's name to tell them apart.
    folders = [f"{p.parent.parent.name}/{p.name}" if folders.count(p.name) > 1 else p.name for p in run_dirs]
    names = []
    for path, title, folder in zip(run_dirs, titles, folders, strict=True):
        if titles.count(title) == 1:
            names.append(title)
        else:  # two runs share a display name ("Quick test"): their folders tell them apart
            names.append(folder if title == path.name else f"{title} ({folder})")
    return names


def _text(value: object) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return repr(value) if isinstance(value, float) else str(value)


class CompareRunsDialog(QDialog):
    def __init__(self, run_dirs: list[Path], runner: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compare runs")
        self.resize(1000, 650)
        self.run_dirs = [Path(p) for p in run_dirs]
        self.names = _run_names(self.run_dirs)
        self._histories: dict[int, RunHistory] = {}
        self._configs: dict[int, dict | str] = {}
        self._failures: list[str] = []
        # Heavier than the live plot's 0.6: overlaid raw-ish curves of several runs are unreadable.
        self._smoothing = 0.9
        self._rows: list[tuple[str, object, object]] = []
        self._build()
        self._apply_palette()
        for index, run_dir in enumerate(self.run_dirs):
            runner.run(
                _loader(index, run_dir),
                on_done=self._on_loaded,
                on_failed=self._on_load_failed,
                name=f"load run {run_dir.name}",
            )
        self._update_loading()

    # ---- for callers and tests ------------------------------------------------------------

    def is_loading(self) -> bool:
        return len(self._histories) + len(self._failures) < len(self.run_dirs)

    def curve_names(self) -> list[str]:
        """Names of the runs whose training-loss curve is shown."""
        return [name for name, curve in zip(self.names, self._loss_curves, strict=True) if curve.isVisible()]

    def diff_rows(self) -> list[tuple[str, object, object]]:
        """The rows of the settings table: (dotted setting, value in run A, value in run B)."""
        return list(self._rows)

    def diff_message(self) -> str:
        """What the settings area says instead of a table ("Identical settings", an error...)."""
        return self._diff_note.text() if self._diff_stack.currentWidget() is self._diff_note else ""

    def set_smoothing(self, weight: float) -> None:
        self._smoothing = self._smoothing_control.set_value(weight)
        for index in self._histories:
            self._draw(index)

    # ---- building -------------------------------------------------------------------------

    def _build(self) -> None:
        self._list = QListWidget()
        self._list.setMaximumWidth(230)
        for index, name in enumerate(self.names):
            pixmap = QPixmap(12, 12)
            pixmap.fill(QColor(RUN_COLORS[index % len(RUN_COLORS)]))
            item = QListWidgetItem(QIcon(pixmap), name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            item.setToolTip(str(self.run_dirs[index]))
            self._list.addItem(item)
        self._list.itemChanged.connect(self._on_item_changed)
        self._smoothing_control = SmoothingControl(self._smoothing)
        self._smoothing_control.changed.connect(self.set_smoothing)
        self._note = QLabel("Solid: training loss (smoothed)\nDashed: eval loss")
        side = QVBoxLayout()
        side.addWidget(QLabel("Runs"))
        side.addWidget(self._list, 1)
        side.addWidget(self._smoothing_control)
        side.addWidget(self._note)

        self._plot = pg.PlotWidget()
        # Mean, not peak: every curve here is smoothed, and peak mode would draw its noise as a band.
        self._plot.setDownsampling(auto=True, mode="mean")
        self._plot.setClipToView(True)
        self._plot.showGrid(x=True, y=True, alpha=0.15)
        self._plot.setMenuEnabled(False)
        self._plot.setLabel("left", "loss")
        self._plot.setLabel("bottom", "step")
        self._legend = self._plot.addLegend(offset=(-10, 10))
        self._loss_curves, self._eval_curves = [], []
        for index, name in enumerate(self.names):
            color = QColor(RUN_COLORS[index % len(RUN_COLORS)])
            loss = self._plot.plot(pen=pg.mkPen(color, width=2), name=name)
            evals = self._plot.plot(
                pen=pg.mkPen(color, width=1.5, style=Qt.PenStyle.DashLine),
                symbol="o",
                symbolSize=5,
                symbolBrush=color,
                symbolPen=None,
            )
            evals.setZValue(1)  # few points: keep them above the dense training curves
            self._loss_curves.append(loss)
            self._eval_curves.append(evals)
        for sample, _label in self._legend.items:  # a click on a legend entry hides its curve
            sample.sigClicked.connect(self._on_legend_clicked)
        self._loading = QLabel("Loading…", alignment=Qt.AlignmentFlag.AlignCenter)
        self._plot_stack = QStackedWidget()
        self._plot_stack.addWidget(self._loading)
        self._plot_stack.addWidget(self._plot)
        top = QWidget()
        top_layout = QHBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addLayout(side)
        top_layout.addWidget(self._plot_stack, 1)

        self._combo_a, self._combo_b = QComboBox(), QComboBox()
        for combo, default in ((self._combo_a, 0), (self._combo_b, 1)):
            combo.addItems(self.names)
            combo.setCurrentIndex(min(default, len(self.names) - 1))
            combo.currentIndexChanged.connect(self._update_diff)
        pick = QHBoxLayout()
        pick.addWidget(QLabel("Run A"))
        pick.addWidget(self._combo_a, 1)
        pick.addSpacing(16)
        pick.addWidget(QLabel("Run B"))
        pick.addWidget(self._combo_b, 1)
        self._table = QTableWidget(0, 3)
        self._table.setHorizontalHeaderLabels(["Setting", "Run A", "Run B"])
        self._table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self._table.setAlternatingRowColors(True)
        self._table.verticalHeader().setVisible(False)
        header = self._table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self._diff_note = QLabel("Loading…", alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self._diff_stack = QStackedWidget()
        self._diff_stack.addWidget(self._diff_note)
        self._diff_stack.addWidget(self._table)
        settings = QGroupBox("Settings that differ")
        settings_layout = QVBoxLayout(settings)
        settings_layout.addLayout(pick)
        settings_layout.addWidget(self._diff_stack, 1)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(settings)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([380, 220])  # room for ~5 differing settings before the table scrolls
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addWidget(buttons)

    def _apply_palette(self) -> None:
        palette = self.palette()
        self._plot.setBackground(palette.color(QPalette.ColorRole.Base))
        style_plot(self._plot.getPlotItem(), "Training loss", palette)
        style_legend(self._legend, palette)
        grey = muted(palette)
        self._note.setStyleSheet(f"color: {grey};")
        self._loading.setStyleSheet(f"color: {grey}; font-size: 14px;")
        self._diff_note.setStyleSheet(f"color: {grey};")

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt override)
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_palette()
        super().changeEvent(event)

    # ---- slots ----------------------------------------------------------------------------

    def _on_loaded(self, result: tuple[int, RunHistory, dict | str]) -> None:
        index, history, config = result
        self._histories[index] = history
        self._configs[index] = config
        if not len(history):
            self._list.item(index).setText(f"{self.names[index]} (no metrics)")
        self._draw(index)
        self._update_loading()

    def _on_load_failed(self, message: str, hint: str) -> None:
        self._failures.append(f"{message} {hint}".strip())
        self._update_loading()

    def _update_loading(self) -> None:
        done = len(self._histories) + len(self._failures)
        if self.is_loading():
            self._loading.setText(f"Loading {len(self.run_dirs)} runs… ({done} read)")
            self._diff_note.setText("Loading…")
            self._diff_stack.setCurrentWidget(self._diff_note)
            return
        if not self._histories:
            self._loading.setText("\n".join(self._failures) or "No runs to compare.")
            return
        self._plot_stack.setCurrentWidget(self._plot)
        self._update_diff()

    def _draw(self, index: int) -> None:
        history = self._histories[index]
        steps, losses = history.series("loss")
        self._loss_curves[index].setData(steps.copy(), smooth(losses, self._smoothing), skipFiniteCheck=True)
        steps, evals = history.series("eval_loss")
        self._eval_curves[index].setData(steps.copy(), evals.copy(), skipFiniteCheck=True)

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        index = self._list.row(item)
        visible = item.checkState() == Qt.CheckState.Checked
        self._loss_curves[index].setVisible(visible)
        self._eval_curves[index].setVisible(visible)

    def _on_legend_clicked(self, curve: pg.PlotDataItem) -> None:
        index = self._loss_curves.index(curve)
        visible = curve.isVisible()
        self._eval_curves[index].setVisible(visible)
        item = self._list.item(index)
        wanted = Qt.CheckState.Checked if visible else Qt.CheckState.Unchecked
        if item.checkState() != wanted:
            item.setCheckState(wanted)

    def _update_diff(self) -> None:
        self._rows = []
        if self.is_loading():
            return
        a, b = self._combo_a.currentIndex(), self._combo_b.currentIndex()
        config_a, config_b = self._configs.get(a), self._configs.get(b)
        if a < 0 or b < 0 or a == b:
            note = "Choose two different runs to compare their settings."
        elif isinstance(config_a, str) or isinstance(config_b, str):
            note = "Cannot compare settings: " + " ".join(
                c for c in (config_a, config_b) if isinstance(c, str)
            )
        elif config_a is None or config_b is None:
            note = "Cannot compare settings: a run could not be read."
        else:
            self._rows = config_diff(config_a, config_b)
            note = "" if self._rows else "Identical settings"
        if note:
            self._diff_note.setText(note)
            self._diff_stack.setCurrentWidget(self._diff_note)
            return
        self._table.setRowCount(len(self._rows))
        for row, (key, value_a, value_b) in enumerate(self._rows):
            for col, value in enumerate((key, _text(value_a), _text(value_b))):
                cell = QTableWidgetItem(value)
                cell.setToolTip(value)
                self._table.setItem(row, col, cell)
        self._diff_stack.setCurrentWidget(self._table)
