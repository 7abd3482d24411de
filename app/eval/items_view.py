"""Per-item answers: one eval set (or the forgetting probe) at a time, the base's answer beside a
tuned model's, filtered to what got worse, got better or changed; the selected item in full below.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QSplitter,
    QTableView,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.eval.items_model import FILTERS, FORGETTING_SOURCE, ItemsModel, build_rows
from app.eval.reports import FORGETTING, is_base
from app.widgets.theme import BETTER_COLOR, WORSE_COLOR, muted


class ItemsView(QWidget):
    """Source, filter and model pickers over a table of items and a detail pane."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: dict | None = None
        self.source = QComboBox(self)
        self.filter = QComboBox(self)
        self.filter.addItems(FILTERS)
        self.filter.setToolTip(
            "Got worse: passed on the base, failed on this model. Got better: the reverse."
        )
        self.model_picker = QComboBox(self)
        self.model_picker.setToolTip("The tuned model whose answers are shown beside the base's")
        for combo in (self.source, self.model_picker):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.count = QLabel(self)
        # The count gives way (elided) before the pickers are squeezed below their contents.
        self.count.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.items = ItemsModel(self)
        self.table = QTableView(self)
        self.table.setModel(self.items)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)  # one line a row
        header = self.table.horizontalHeader()
        for column, mode in enumerate((0, 1, 0, 1, 0, 1, 0)):
            header.setSectionResizeMode(
                column, QHeaderView.ResizeMode.Stretch if mode else QHeaderView.ResizeMode.Interactive
            )
        header.resizeSection(0, 130)
        header.resizeSection(2, 110)
        for column in (4, 6):
            header.resizeSection(column, 28)
        self.detail = QTextBrowser(self)
        self.detail.setPlaceholderText("Select an item to read it in full.")

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        for label, widget in (("Source", self.source), ("Show", self.filter), ("Model", self.model_picker)):
            bar.addWidget(QLabel(label, self))
            bar.addWidget(widget)
        bar.addSpacing(8)
        bar.addWidget(self.count, 1)
        split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(self.table)
        split.addWidget(self.detail)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([300, 200])
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(split, 1)

        for combo in (self.source, self.filter, self.model_picker):
            combo.currentIndexChanged.connect(self._refresh)
        self.table.selectionModel().currentRowChanged.connect(self._show_detail)
        self.show_report(None)

    def show_report(self, report: dict | None) -> None:
        self.report = report
        models = report["models"] if report else []
        sources: list[str] = []
        for model in models:
            sources += [name for name in (model.get("sets") or {}) if name not in sources]
        if any(FORGETTING in (m.get("probes") or {}) for m in models):
            sources.append(FORGETTING_SOURCE)
        for combo, entries in (
            (self.source, sources),
            (
                self.model_picker,
                [str(m.get("label") or "?") for m in models[1:]]
                or [str(m.get("label") or "?") for m in models[:1]],
            ),
        ):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(entries)
            combo.blockSignals(False)
        self.model_picker.setCurrentIndex(self.model_picker.count() - 1)  # the latest run, usually
        compared = len(models) > 1 and is_base(models[0])
        self.filter.setEnabled(compared)
        if not compared:
            self.filter.setCurrentIndex(0)
        self._refresh()

    def set_source(self, source: str) -> None:
        self.source.setCurrentText(source)

    def set_filter(self, kind: str) -> None:
        self.filter.setCurrentIndex(FILTERS.index(kind))

    def _refresh(self, *_args) -> None:
        models = self.report["models"] if self.report else []
        source = self.source.currentText()
        if not models or not source:
            self.items.set_rows([], "Base model", "Model")
            self.count.setText("No items in this report." if models else "")
            self.detail.clear()
            return
        base = models[0]
        model = models[min(len(models) - 1, self.model_picker.currentIndex() + (1 if len(models) > 1 else 0))]
        rows = build_rows(base, model, source)
        kind = self.filter.currentText()
        shown = [r for r in rows if r.matches(kind)]
        self.items.set_rows(shown, str(base.get("label") or "Base"), str(model.get("label") or "Model"))
        for column in (5, 6):  # the base beside itself (a base-only report) is one answer, not two
            self.table.setColumnHidden(column, model is base)
        worse = sum(r.matches("Got worse") for r in rows)
        better = sum(r.matches("Got better") for r in rows)
        summary = f"{len(shown)} of {len(rows)} items" if kind != "All" else f"{len(rows)} items"
        if model is not base:
            summary += f" · {worse} got worse · {better} got better"
        self.count.setText(summary)
        self.count.setStyleSheet(f"color: {muted(self.palette())};")
        self.detail.clear()
        if shown:
            self.table.selectRow(0)

    def _show_detail(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid() or current.row() >= len(self.items.rows):
            self.detail.clear()
            return
        row = self.items.rows[current.row()]
        base_label, model_label = self.items.headers[3], self.items.headers[5]

        def block(title: str, text: str, passed: object = None) -> str:
            mark = ""
            if passed is not None:
                color = BETTER_COLOR if passed else WORSE_COLOR
                mark = f" <span style='color:{color}'>{'✓ passed' if passed else '✗ failed'}</span>"
            body = html.escape(text) if text else "<i>(empty)</i>"
            text_html = f"<span style='white-space: pre-wrap'>{body}</span>"
            return f"<p><b>{html.escape(title)}</b>{mark}<br>{text_html}</p>"

        parts = [f"<p><b>{html.escape(row.label)}</b></p>", block("Prompt", row.prompt)]
        if row.expected:
            parts.append(block("Expected", row.expected))
        parts.append(block(base_label, row.base_answer, row.base_passed))
        if self.items.headers[3] != self.items.headers[5] or row.answer != row.base_answer:
            parts.append(block(model_label, row.answer, row.passed))
        self.detail.setHtml("".join(parts))
