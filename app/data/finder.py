"""The Data tab's find and filter: which rows the table shows, and which stays selected.

Text search runs on a worker (a snapshot of the rows, so typing never waits for it); problem
and token-length filters apply at once. A collaborator of DataPage: the page attaches the open
document with its table model and view.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from app.data.document import DatasetDocument
from app.data.row_filter import RowFilter, visible_rows
from app.data.table_model import DatasetTableModel
from app.data.table_view import DatasetView
from app.data.toolbar import DataToolbar
from app.infra.tasks import Task, TaskRunner, while_alive
from engine.data.row_search import matching_rows


class RowFinder(QObject):
    nothing_shown = Signal()  # the filter hides every row: no row is current

    def __init__(
        self, tasks: TaskRunner, toolbar: DataToolbar, view: DatasetView, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.tasks = tasks
        self.toolbar = toolbar
        self.view = view
        self.filter = RowFilter()
        self.document: DatasetDocument | None = None
        self.table_model: DatasetTableModel | None = None
        self._text_mask = None  # rows matching filter.text, once the search answered
        self._search_task: Task | None = None
        self._search_timer = QTimer(self, singleShot=True, interval=300)
        self._search_timer.timeout.connect(self._start_search)
        toolbar.filter_changed.connect(self.set_filter)

    def attach(self, document: DatasetDocument | None, table_model: DatasetTableModel | None) -> None:
        """The open document (None when closed); a search of the one before is abandoned."""
        if self._search_task is not None:
            self._search_task.cancel()
            self._search_task = None
        self.document, self.table_model = document, table_model
        self._text_mask = None

    def reveal(self, row_id: int) -> None:
        """Make a row visible: clears the filters when they hide it."""
        if self.table_model is not None and self.table_model.row_of(row_id) is None and self.filter.active():
            self.toolbar.clear_filters()

    def set_filter(self, spec: RowFilter) -> None:
        text_changed = spec.text != self.filter.text
        self.filter = spec
        if text_changed:
            self._text_mask = None
            if spec.text:
                self._search_timer.start()
                return
        self.apply(keep=self.view.current_id())

    def _start_search(self) -> None:
        document, needle = self.document, self.filter.text
        if document is None or not needle:
            return
        if self._search_task is not None:
            self._search_task.cancel()
        snapshot, _ops = document.snapshot()
        task = Task(lambda _p, _c: matching_rows(snapshot, needle), "search")
        task.finished.connect(while_alive(self, lambda mask, t=task: self._on_searched(t, needle, mask)))
        self._search_task = self.tasks.start(task)
        self.toolbar.show_progress(0, 0, "Searching…")

    def _on_searched(self, task: Task, needle: str, mask) -> None:
        if task is not self._search_task:
            return
        self._search_task = None
        self.toolbar.show_progress(0, 0, "")
        if needle == self.filter.text:
            self._text_mask = mask
            self.apply(keep=self.view.current_id())

    def apply(self, keep: int | None = None) -> None:
        """Show the rows the filter lets through; `keep` stays selected when it is one of them."""
        if self.document is None or self.table_model is None:
            return
        if self.filter.text and self._text_mask is None:
            return  # the search is still running; the table keeps its rows until it answers
        ids = visible_rows(self.document, self.filter, self._text_mask)
        self.table_model.set_view(ids)
        self.toolbar.show_count(len(ids), len(self.document.store))
        if keep is not None and self.table_model.row_of(keep) is not None:
            self.view.select_id(keep)
        elif len(ids):
            self.view.select_first()
        else:
            self.nothing_shown.emit()
