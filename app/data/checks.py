"""The Data tab's checks: runs the review of the open dataset and shows its results in the
problems panel, the table and the token-length histogram.

A collaborator of DataPage: the page attaches the open document and its table model; the
review runs off the UI thread (app.data.review) with the model the ModelContext names.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QTabWidget, QWidget

from app.data.document import DatasetDocument
from app.data.model_context import ModelContext
from app.data.problems_panel import ProblemsPanel
from app.data.review import ReviewRunner
from app.data.row_filter import lengths_of
from app.data.table_model import DatasetTableModel
from app.data.toolbar import DataToolbar
from app.infra.tasks import TaskRunner


class DatasetChecks(QObject):
    failed = Signal(str, str)  # message, hint
    issues_shown = Signal()  # the problems changed on screen (a problem filter must be applied again)

    def __init__(
        self,
        tasks: TaskRunner,
        context: ModelContext,
        problems: ProblemsPanel,
        bottom: QTabWidget,
        lengths_tab: QWidget,
        toolbar: DataToolbar,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.context = context
        self.problems = problems
        self.bottom = bottom
        self.lengths_tab = lengths_tab
        self.toolbar = toolbar
        self.reviewer = ReviewRunner(tasks, self)
        self.document: DatasetDocument | None = None
        self.table_model: DatasetTableModel | None = None
        self.histogram = None  # the TokenHistogram, made when lengths are first known (pyqtgraph is heavy)
        self._timer = QTimer(self, singleShot=True, interval=800)
        self._timer.timeout.connect(self.start_review)
        self.reviewer.progress.connect(self.toolbar.show_progress)
        self.reviewer.finished.connect(self._on_reviewed)
        self.reviewer.failed.connect(self._on_review_failed)

    def attach(self, document: DatasetDocument | None, table_model: DatasetTableModel | None) -> None:
        """The open document (None when closed); a review of the one before is abandoned."""
        if document is None:
            self.reviewer.cancel()
        self.document, self.table_model = document, table_model

    def reviewing(self) -> bool:
        return self.reviewer.running()

    def start_review(self) -> None:
        document = self.document
        if document is None:
            return
        context = self.context
        self.reviewer.start(document, context.tokenizer, context.review_model(), context.max_length)
        document.review_stale = False

    def review_if_stale(self) -> None:
        """After edits: review again shortly (typing does not start one review per key)."""
        if self.document is not None and self.document.review_stale:
            self._timer.start()

    def cancel(self) -> None:
        self.reviewer.cancel()

    def show_issues(self) -> None:
        document = self.document
        if document is None:
            return
        store = document.store
        entries = [(p, i, x.kind, x.message, x.severity) for p, i, x in document.issue_entries()]
        counts: dict[str, int] = {}
        for e in entries:
            counts[e[2]] = counts.get(e[2], 0) + 1
        for problem in store.file_problems:  # records of other file kinds that could not be kept
            text = f"{problem.where()}: {problem.message} (not loaded)"
            entries.append((-1, -1, problem.kind, text, "error"))
        self.problems.set_problems(entries, counts, reviewing=self.reviewing())
        self.bottom.setTabText(0, f"Problems ({len(entries)})" if entries else "Problems")
        self.toolbar.set_problem_kinds(counts)
        if self.table_model is not None:
            self.table_model.refresh_all()
        self.issues_shown.emit()

    def _on_review_failed(self, message: str, hint: str) -> None:
        self.toolbar.show_progress(0, 0, "")
        self.failed.emit(message, hint)

    def _on_reviewed(self, document: DatasetDocument, review) -> None:
        if document is not self.document:
            return
        self.toolbar.show_progress(0, 0, "")
        document.set_review(review)
        self._update_histogram()
        self.review_if_stale()  # edited while it ran

    def _update_histogram(self) -> None:
        document = self.document
        lengths = lengths_of(document.review.lengths, document.store.order) if document else None
        if lengths is None:
            return
        if self.histogram is None:
            # pyqtgraph: imported when first needed
            from app.data.token_histogram import TokenHistogram

            self.histogram = TokenHistogram(self.lengths_tab)
            self.lengths_tab.layout().addWidget(self.histogram)
        self.histogram.set_lengths(lengths[lengths >= 0], self.context.max_length)
        self.toolbar.set_lengths_known(True)
