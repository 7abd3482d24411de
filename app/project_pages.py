"""The central area: Data, Train and Chat tabs for the selected project.

Train is the real training view (app.train_page). Until the dataset editor and the chat
pane plug in here, their tabs show what the project holds for that step.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QScrollArea, QTabWidget, QVBoxLayout, QWidget

from engine.fsutil import format_size

PAGES = (
    ("Data", "The rows the model will learn from.",
     "The dataset editor (view, fix and shape rows; see exactly what gets trained) comes in the next version."),
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
        if self.title == "Data":
            chosen = Path(project.dataset).name if project.dataset else None
            for ds in project.datasets:
                label = "Training data" if ds.name == chosen else ""
                rows.append(f"<tr><td><b>{label}</b></td><td>{esc(ds.name)} "
                            f"<span style='color:gray'>({format_size(ds.size_bytes)})</span></td></tr>")
            if not project.datasets:
                rows.append("<tr><td><b>Training data</b></td><td><i>none yet: copy a file into the "
                            "project's datasets folder</i></td></tr>")
        else:
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
    def __init__(self, train_page: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDocumentMode(True)
        self.pages = [ProjectPage(*spec, parent=self) for spec in PAGES]
        self.train = train_page
        self.pages.insert(1, train_page)
        for page in self.pages:
            self.addTab(page, page.title)

    def show_project(self, project) -> None:
        for page in self.pages:
            page.show_project(project)
