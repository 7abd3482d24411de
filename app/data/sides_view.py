"""A preference row as the trainer sees it: each side (the prompt with one answer) in its own
TrainedView, side by side, with its trained tokens highlighted.

The sides come from engine.data.preference.render_sides, the rendering the preference trainers
tokenize: a pair gives chosen and rejected, a rated reply (KTO) one side, good or bad.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtWidgets import QLabel, QSplitter, QVBoxLayout, QWidget

from app.widgets.theme import muted
from engine.data.rendering import Rendered
from engine.data.review import check_row
from engine.data.shapes import Shape

GOOD, BAD = "#16a34a", "#dc2626"
TITLES = {
    "chosen": ("chosen · the better answer", GOOD),
    "rejected": ("rejected · the worse answer", BAD),
    "good": ("a good answer (label true)", GOOD),
    "bad": ("a bad answer (label false)", BAD),
}


def preference_sides(
    record: dict, shape: Shape, tokenizer, max_length: int
) -> list[tuple[str, Rendered]] | str:
    """The sides of a preference row as the trainers render them, or why it is not trained."""
    from engine.data.preference import render_sides

    row, issues = check_row(record, shape)
    if row is None:
        return f"This row is not trained: {issues[0].message}."
    try:
        return render_sides(tokenizer, row, max_length)
    except ValueError as exc:  # the chat template refuses it
        return f"This row is not trained: {exc}."


class SidesView(QWidget):
    """One column per side of a preference row; `views` are the sides' TrainedViews, in order."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.views: list = []  # TrainedView of each side shown
        self.titles: list[QLabel] = []
        self._columns: list[QWidget] = []
        self.legend = QLabel()
        self.legend.setContentsMargins(6, 2, 6, 2)
        self.legend.setWordWrap(True)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.legend)
        layout.addWidget(self.splitter, 1)

    def show_sides(self, sides: list[tuple[str, Rendered]], max_length: int) -> None:
        from app.data.trained_view import TrainedView  # that module shows a SidesView for pairs

        while len(self.views) < len(sides):  # columns are kept from row to row: building them costs
            column = QWidget()
            box = QVBoxLayout(column)
            box.setContentsMargins(2, 0, 2, 0)
            title, view = QLabel(), TrainedView()
            title.setContentsMargins(6, 4, 6, 0)
            view.legend.hide()  # one legend above both columns
            box.addWidget(title)
            box.addWidget(view, 1)
            self.splitter.addWidget(column)
            self._columns.append(column)
            self.titles.append(title)
            self.views.append(view)
        for i, column in enumerate(self._columns):
            column.setVisible(i < len(sides))
        for (side, rendered), title, view in zip(sides, self.titles, self.views, strict=False):
            text, colour = TITLES.get(side, (side, muted(self.palette())))
            title.setText(f'<b style="color:{colour}">{text}</b>')
            view.show_rendered(rendered, max_length)
        self.splitter.setSizes([1000] * len(sides))  # equal columns
        self._restyle()

    def _restyle(self) -> None:
        if self.views:
            legend = self.views[0].legend.text()  # the same swatch, said of one answer
            self.legend.setText(legend.replace("assistant replies and their", "the answer and its"))
        self.legend.setStyleSheet(f"color: {muted(self.palette())};")

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt override)
        if event.type() == QEvent.Type.PaletteChange:
            QTimer.singleShot(0, self, self._restyle)  # once the columns have restyled their own legend
        super().changeEvent(event)
