"""The scorecard: one row per metric, one column per evaluated model (the base first).

A tuned model's cell is green when it is better than the base and red when it is worse (for
losses, KL, changed answers and bias gaps lower is better); its tooltip gives the base value
and the difference. Metrics the report does not have are left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from app.eval.reports import FORGETTING, is_base, percent
from app.widgets.theme import BETTER_COLOR, WORSE_COLOR


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    hint: str
    lower_is_better: bool
    kind: str  # "percent" (0..1), "points" (0..1 shown as percentage points) or "number"
    get: Callable[[dict], object]
    digits: int = 3
    unit: str = ""
    relative: bool = False  # measured against the base: the base's own value is 0 by definition

    def value(self, model: dict) -> float | None:
        value = self.get(model)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None
        return float(value)

    def text(self, value: float) -> str:
        if self.kind == "percent":
            return percent(value)
        if self.kind == "points":
            return f"{value * 100:.1f} pts"
        return f"{value:.{self.digits}f}{self.unit}"

    def difference(self, delta: float) -> str:
        sign = "+" if delta > 0 else "−" if delta < 0 else "±"
        if self.kind in ("percent", "points"):
            return f"{sign}{abs(delta) * 100:.1f} pts"
        return f"{sign}{abs(delta):.{self.digits}f}{self.unit}"


def _path(*keys: str) -> Callable[[dict], object]:
    def get(model: dict) -> object:
        value: object = model
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    return get


def metrics_for(report: dict) -> list[Metric]:
    """The scorecard's rows for `report`: only metrics at least one model has."""
    set_names: list[str] = []
    for model in report["models"]:
        set_names += [name for name in (model.get("sets") or {}) if name not in set_names]
    rows = [
        Metric(
            f"set:{name}",
            f"{name}: score",
            f"Share of the scored items of eval set '{name}' passed.",
            False,
            "percent",
            _path("sets", name, "score"),
        )
        for name in set_names
    ]
    rows += [
        Metric(
            "validation_loss",
            "Validation loss",
            "Mean loss on the validation data (lower is better).",
            True,
            "number",
            _path("validation", "loss"),
        ),
        Metric(
            "perplexity",
            "Perplexity",
            "exp(validation loss) (lower is better).",
            True,
            "number",
            _path("validation", "perplexity"),
            digits=2,
        ),
        Metric(
            "forgetting_accuracy",
            "General ability: accuracy",
            "Share of the forgetting probe's checkable prompts answered right.",
            False,
            "percent",
            _path("probes", FORGETTING, "accuracy"),
        ),
        Metric(
            "accuracy_drop",
            "General ability: drop",
            "Base accuracy minus this model's, in percentage points (lower is better).",
            True,
            "points",
            _path("probes", FORGETTING, "accuracy_drop"),
            relative=True,
        ),
        Metric(
            "kl",
            "KL from the base",
            "Mean per-token KL divergence from the base on the base's own "
            "answers: how far the model moved (lower is better).",
            True,
            "number",
            _path("probes", FORGETTING, "kl"),
            relative=True,
        ),
        Metric(
            "changed",
            "Answers changed",
            "Share of the probe's prompts whose answer differs from the base's.",
            True,
            "percent",
            _path("probes", FORGETTING, "changed"),
            relative=True,
        ),
        Metric(
            "bias_gap",
            "Largest bias gap",
            "The largest log-likelihood gap between the two members "
            "of a bias pair, in nats (lower is better).",
            True,
            "number",
            _path("probes", "bias", "max_gap"),
            digits=2,
            unit=" nats",
        ),
    ]
    # A base-only report has nothing to measure against the base: its 0s there would read as results.
    def measured(metric: Metric, model: dict) -> bool:
        return not (metric.relative and is_base(model)) and metric.value(model) is not None

    return [m for m in rows if any(measured(m, model) for model in report["models"])]


class ScorecardModel(QAbstractTableModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.models: list[dict] = []
        self.metrics: list[Metric] = []

    def set_report(self, report: dict | None) -> None:
        self.beginResetModel()
        self.models = list(report["models"]) if report else []
        self.metrics = metrics_for(report) if report else []
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802, B008 (Qt override)
        return 0 if parent.isValid() else len(self.metrics)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802, B008 (Qt override)
        return 0 if parent.isValid() else len(self.models)

    def verdict(self, row: int, column: int) -> str | None:
        """ "better", "worse" or None (the base itself, no base, a missing value, equal)."""
        base = self.models[0] if self.models and is_base(self.models[0]) else None
        if base is None or column == 0:
            return None
        metric = self.metrics[row]
        value, reference = metric.value(self.models[column]), metric.value(base)
        if value is None or reference is None or math.isclose(value, reference, rel_tol=1e-9, abs_tol=1e-12):
            return None
        return "better" if (value < reference) == metric.lower_is_better else "worse"

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        metric, model = self.metrics[index.row()], self.models[index.column()]
        value = None if metric.relative and is_base(model) else metric.value(model)
        if role == Qt.ItemDataRole.DisplayRole:
            return "—" if value is None else metric.text(value)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignCenter)
        verdict = self.verdict(index.row(), index.column())
        if role == Qt.ItemDataRole.ForegroundRole and verdict:
            return QColor(BETTER_COLOR if verdict == "better" else WORSE_COLOR)
        if role == Qt.ItemDataRole.BackgroundRole and verdict:
            tint = QColor(BETTER_COLOR if verdict == "better" else WORSE_COLOR)
            tint.setAlpha(40)
            return tint
        if role == Qt.ItemDataRole.FontRole and verdict:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(metric, model, value, verdict)
        return None

    def _tooltip(self, metric: Metric, model: dict, value: float | None, verdict: str | None) -> str:
        if metric.relative and is_base(model):
            return f"{metric.label}: the base model is what this row measures the other models against."
        lines = [
            f"{metric.label} of {model.get('label') or 'this model'}: "
            + ("not measured" if value is None else metric.text(value))
        ]
        base = self.models[0]
        reference = metric.value(base) if is_base(base) and model is not base else None
        if reference is not None and value is not None:
            lines.append(f"Base model: {metric.text(reference)}")
            lines.append(
                f"Difference: {metric.difference(value - reference)}"
                + (f" ({verdict})" if verdict else " (the same)")
            )
        entry = (model.get("sets") or {}).get(metric.key[4:]) if metric.key.startswith("set:") else None
        if isinstance(entry, dict) and entry.get("scored") is not None:
            lines.append(
                f"{entry.get('passed', '?')} of {entry['scored']} scored items passed"
                f" ({entry.get('total', entry['scored'])} in the set)"
            )
        return "\n".join(lines)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):  # noqa: N802
        horizontal = orientation == Qt.Orientation.Horizontal
        if horizontal and section >= len(self.models) or not horizontal and section >= len(self.metrics):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return (
                str(self.models[section].get("label") or "?") if horizontal else self.metrics[section].label
            )
        if role == Qt.ItemDataRole.ToolTipRole:
            if horizontal:
                model = self.models[section]
                return str(model.get("adapter") or "The base model, without an adapter")
            return self.metrics[section].hint
        return None


class Scorecard(QTableView):
    """The report's metrics side by side; `show_report(report)` fills it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = ScorecardModel(self)
        self.setModel(self.table)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(110)
        rows = self.verticalHeader()
        rows.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(self.fontMetrics().height() + 10)  # compact: every row fits at once

    def show_report(self, report: dict | None) -> None:
        self.table.set_report(report)

    def clear(self) -> None:
        self.table.set_report(None)

    def row_of(self, key: str) -> int:
        """The row of metric `key` ("set:facts", "kl", ...); -1 when the report lacks it."""
        return next((i for i, m in enumerate(self.table.metrics) if m.key == key), -1)

    def cell_text(self, key: str, column: int) -> str | None:
        row = self.row_of(key)
        return None if row < 0 else self.table.data(self.table.index(row, column))

    def verdict(self, key: str, column: int) -> str | None:
        row = self.row_of(key)
        return None if row < 0 else self.table.verdict(row, column)

    def preferred_height(self) -> int:
        """Tall enough for every row without a scroll bar."""
        rows = self.table.rowCount()
        header = self.horizontalHeader().sizeHint().height()
        return header + rows * self.verticalHeader().defaultSectionSize() + 2 * self.frameWidth() + 2
