"""Runs the review of an open dataset off the UI thread: a worker thread when small, a child process when big.

A big review is minutes of pure Python; in a thread it would hold the GIL against the UI thread,
whose every paint calls into Python about a thousand times (measured: stalls of seconds). Above
`rows_in_process` rows it runs as `whetstone-engine data review-job` instead (engine.data.review_job).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.infra.engine_process import EngineProcess
from app.infra.tasks import Task, TaskRunner, while_alive
from engine.cli.protocol import EXIT_DONE, error_message
from engine.data.review import review_store


class ReviewRunner(QObject):
    progress = Signal(int, int, str)
    finished = Signal(object, object)  # document, Review
    failed = Signal(str, str)

    rows_in_process = 20_000
    """Up to this many rows (with the tokenizer already loaded, or no model), a thread;
    else a child process."""

    def __init__(self, tasks: TaskRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.tasks = tasks
        self._task: Task | None = None
        self._process: EngineProcess | None = None
        self._folder: Path | None = None

    def running(self) -> bool:
        return self._task is not None or self._process is not None

    def start(self, document, tokenizer, model: str | None, max_length: int) -> None:
        """Review a snapshot of the document's rows; a review already running is abandoned."""
        self.cancel()
        snapshot, _ops = document.snapshot()
        # A thread only when it is short and needs no tokenizer load: loading one imports torch,
        # which holds the GIL for about 0.5 s; the child process loads its own.
        if len(snapshot) <= self.rows_in_process and (model is None or tokenizer is not None):
            self._start_thread(document, snapshot, tokenizer, max_length)
        else:
            self._start_process(document, snapshot, model, max_length)

    def _start_thread(self, document, snapshot, tokenizer, max_length: int) -> None:
        shape = document.shape
        task = Task(
            lambda progress, cancelled: review_store(
                snapshot,
                shape,
                tokenizer,
                max_length,
                lambda d, t: progress(d, t, "Checking rows"),
                cancelled,
            ),
            "review dataset",
        )
        task.progress.connect(self.progress)
        task.finished.connect(while_alive(self, lambda review, t=task: self._done(t, document, review)))
        task.failed.connect(while_alive(self, lambda m, h, t=task: self._fail(t, m, h)))
        self._task = self.tasks.start(task)

    def _start_process(self, document, snapshot, model: str | None, max_length: int) -> None:
        from engine.data.review_job import write_state

        self._folder = Path(tempfile.mkdtemp(prefix="whetstone-review-"))
        write_state(snapshot, self._folder, model, max_length)
        process = EngineProcess(["data", "review-job", str(self._folder)], self)
        process.message.connect(lambda m, p=process: self._on_message(p, m))
        process.ended.connect(
            lambda code, line, p=process: self._on_ended(p, document, max_length, code, line)
        )
        self._process = process
        self.progress.emit(0, 0, "Checking rows (in a separate process)")
        process.start()

    def _on_message(self, process: EngineProcess, message: dict) -> None:
        if process is self._process and message.get("type") == "progress":
            self.progress.emit(int(message["done"]), int(message["total"]), "Checking rows")

    def _on_ended(self, process: EngineProcess, document, max_length: int, code: int, line: str) -> None:
        if process is not self._process:
            return
        self._process = None
        folder = self._folder
        if code != EXIT_DONE:
            self._remove(folder)
            self.failed.emit(
                f"The rows could not be checked: {error_message(line) or f'exit code {code}'}",
                "The table still works; reopen the dataset to check again.",
            )
            return
        from engine.data.review_job import read_result

        task = Task(lambda _p, _c: read_result(folder, max_length), "read review")
        task.finished.connect(
            while_alive(self, lambda review, t=task: (self._remove(folder), self._done(t, document, review)))
        )
        task.failed.connect(
            while_alive(self, lambda m, h, t=task: (self._remove(folder), self._fail(t, m, h)))
        )
        self._task = self.tasks.start(task)

    def _done(self, task: Task, document, review) -> None:
        if task is self._task:
            self._task = None
            self.finished.emit(document, review)

    def _fail(self, task: Task, message: str, hint: str) -> None:
        if task is self._task:
            self._task = None
            self.failed.emit(message, hint)

    @staticmethod
    def _remove(folder: Path | None) -> None:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._process is not None:
            process, self._process = self._process, None
            process.kill(grace_ms=500)
            self._remove(self._folder)
