"""The central area: the Data, Train, Chat and Evaluate tabs for the selected project.

Data is the dataset editor (app.data.page), Train the training view (app.train.page), Chat the
chat pane (app.chat.page), Evaluate the scorecards (app.eval.page). Each page takes the project
summary in `show_project`.
"""

from __future__ import annotations

from PySide6.QtWidgets import QTabWidget, QWidget


class ProjectPages(QTabWidget):
    MINIMUM_WIDTH = 560
    """The pages' own minimum: a page's widgets (a long status text) must not push the project
    browser aside. Pages are laid out for more; below it they are clipped, not the browser."""

    def __init__(
        self,
        data_page: QWidget,
        train_page: QWidget,
        chat_page: QWidget,
        eval_page: QWidget,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setDocumentMode(True)
        self.setMinimumWidth(self.MINIMUM_WIDTH)
        self.data, self.train, self.chat, self.eval = data_page, train_page, chat_page, eval_page
        self.pages = [data_page, train_page, chat_page, eval_page]
        for page in self.pages:
            self.addTab(page, page.title)

    def show_project(self, project) -> None:
        for page in self.pages:
            page.show_project(project)
