"""The central area: Data, Train and Chat tabs for the selected project.

Data is the dataset editor (app.data_page), Train the training view (app.train_page). Until
the chat pane plugs in here, its tab shows what the project holds for that step.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QScrollArea, QTabWidget, QVBoxLayout, QWidget

PAGES = (
    ("Chat", "Talk to the base model and to your tuned adapters side by side.",
     "The chat pane comes in the next version."),
)


class ProjectPage(QWidget):
    def __init__(self, title: str, purpose: str, coming: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title, self.purpose, self.coming = title, purpose, coming
        self.body = QLabel(self)
        self.body.setTextFormat(Qt.TextFormat.RichText)
        self.body.setWordWrap(True)
        self.body.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(self.body)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.addWidget(scroll)
        self.show_project(None)

    def show_project(self, project) -> None:
        esc = html.escape
        parts = [f"<h2>{esc(self.title)}</h2><p>{esc(self.purpose)}</p>"]
        if project is None:
            parts.append("<p><b>No project selected.</b> Pick one on the left, or create one with "
                         "File → New project (Ctrl+N).</p>")
        elif project.problem:
            parts.append(f"<p><b>{esc(project.name)}</b> cannot be opened: {esc(project.problem)}</p>")
        else:
            parts.append(self._details(project))
        parts.append(f"<p style='color:gray'>{esc(self.coming)}</p>")
        self.body.setText("".join(parts))

    def _details(self, project) -> str:
        esc = html.escape
        rows = [f"<tr><td><b>Project</b></td><td>{esc(project.name)}</td></tr>",
                f"<tr><td><b>Base model</b></td><td>{self._model(project)}</td></tr>"]
        adapters = [r for r in project.runs if r.adapter]
        names = ", ".join(esc(r.name) for r in adapters) or "none yet (train a run first)"
        rows.append(f"<tr><td><b>Tuned adapters</b></td><td>{names}</td></tr>")
        return "<table cellspacing='6'>" + "".join(rows) + "</table>"

    @staticmethod
    def _model(project) -> str:
        if not project.model:
            return "<i>none chosen: Models → Model library (Ctrl+L)</i>"
        path = Path(project.model)
        state = "" if (path / "config.json").is_file() else (
            " <span style='color:#b9770e'>(not on disk yet)</span>")
        return (f"{html.escape(path.name)}{state}<br>"
                f"<span style='color:gray'>{html.escape(str(path))}</span>")


class ProjectPages(QTabWidget):
    def __init__(self, data_page: QWidget, train_page: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDocumentMode(True)
        self.data, self.train = data_page, train_page
        self.pages = [data_page, train_page, *(ProjectPage(*spec, parent=self) for spec in PAGES)]
        for page in self.pages:
            self.addTab(page, page.title)

    def show_project(self, project) -> None:
        for page in self.pages:
            page.show_project(project)
