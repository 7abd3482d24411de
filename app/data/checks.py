"""The Data tab's problems and token lengths: the review's results into the panel, table and histogram.

A mixin of DataPage: it uses the page's document, reviewer, problems panel, toolbar and filter.
"""

from __future__ import annotations

from app.data.document import DatasetDocument
from app.data.row_filter import lengths_of


class DatasetChecks:
    # ---- problems, review, lengths ------------------------------------------------------------------
    def _on_issues_changed(self) -> None:
        document = self.document
        if document is None:
            return
        store = document.store
        entries = [(p, i, x.kind, x.message, x.severity) for p, i, x in document.issue_entries()]
        counts: dict[str, int] = {}
        for e in entries:
            counts[e[2]] = counts.get(e[2], 0) + 1
        for problem in store.file_problems:  # records of other file kinds that could not be kept
            entries.append((-1, -1, problem.kind, f"{problem.where()}: {problem.message} (not loaded)", "error"))
        self.problems.set_problems(entries, counts, reviewing=self.reviewing())
        self.bottom.setTabText(0, f"Problems ({len(entries)})" if entries else "Problems")
        self.toolbar.set_problem_kinds(counts)
        if self.table_model is not None:
            self.table_model.refresh_all()
        if self.filter.problem:
            self._apply_filter(keep=self._current_id())

    def _start_review(self) -> None:
        document = self.document
        if document is None:
            return
        self.reviewer.start(document, self.tokenizer, self._tokenizer_for, self.max_length)
        document.review_stale = False

    def reviewing(self) -> bool:
        return self.reviewer.running()

    def _on_review_failed(self, message: str, hint: str) -> None:
        self.toolbar.show_progress(0, 0, "")
        self.failed.emit(message, hint)

    def _on_reviewed(self, document: DatasetDocument, review) -> None:
        if document is not self.document:
            return
        self.toolbar.show_progress(0, 0, "")
        document.set_review(review)
        self._update_histogram()
        if document.review_stale:  # edited while it ran
            self._review_timer.start()

    def _update_histogram(self) -> None:
        document = self.document
        lengths = lengths_of(document.review.lengths, document.store.order) if document else None
        if lengths is None:
            return
        if self._histogram is None:
            from app.data.token_histogram import (
                TokenHistogram,  # pyqtgraph: imported when first needed
            )

            self._histogram = TokenHistogram(self.lengths_tab)
            self.lengths_tab.layout().addWidget(self._histogram)
        self._histogram.set_lengths(lengths[lengths >= 0], self.max_length)
        self.toolbar.set_lengths_known(True)

