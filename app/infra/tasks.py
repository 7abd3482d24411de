"""Work off the UI thread: Python functions in a thread pool (engine child processes are
app.infra.engine_process).

Worker code never touches widgets. It reports through Qt signals, which Qt delivers on
the UI thread, so slow work (folder scans, copies, saves) never freezes it.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from engine.errors import Cancelled, UserError  # a task function raises Cancelled to stop

log = logging.getLogger(__name__)


def while_alive(owner: QObject, fn: Callable[..., Any]) -> Callable[..., None]:
    """`fn` as a slot that does nothing once `owner` is deleted: a task may end after its page closed."""
    import shiboken6

    def call(*args: Any) -> None:
        if shiboken6.isValid(owner):
            fn(*args)

    return call


class Task(QObject):
    """One function run in the thread pool; `fn(progress, cancelled)` returns the result.

    `progress(done, total, message)` and `cancelled()` are handed to the function so it can
    report and stop early. Exactly one of finished / failed / was_cancelled is emitted.
    """

    progress = Signal(int, int, str)
    finished = Signal(object)
    failed = Signal(str, str)  # message, hint
    was_cancelled = Signal()

    def __init__(self, fn: Callable[..., Any], name: str = "") -> None:
        super().__init__()
        self.name = name or getattr(fn, "__name__", "task")
        self._fn = fn
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:  # runs on a pool thread
        try:
            result = self._fn(
                lambda done, total, msg="": self.progress.emit(done, total, msg), self.is_cancelled
            )
        except Cancelled:
            self.was_cancelled.emit()
        except UserError as exc:
            self.failed.emit(exc.message, exc.hint)
        except OSError as exc:  # a folder gone, not writable, or a full disk: the user can act on it
            where = f" {exc.filename}" if exc.filename else ""
            self.failed.emit(
                f"Cannot use{where}: {exc.strerror or exc}.",
                "Check that the folder exists, that you may write to it and that the disk is not full.",
            )
        except Exception as exc:  # a bug: report it, keep the app alive
            log.error("task %s failed:\n%s", self.name, traceback.format_exc())
            self.failed.emit(
                f"{type(exc).__name__}: {exc}",
                "This is a bug in Whetstone; Help → Diagnostics has the details to report.",
            )
        else:
            self.finished.emit(result)


class _Runnable(QRunnable):
    def __init__(self, task: Task) -> None:
        super().__init__()
        self.task = task

    def run(self) -> None:
        self.task.run()


class TaskRunner(QObject):
    """Starts tasks on a thread pool and keeps them alive until they end."""

    def __init__(self, parent: QObject | None = None, threads: int = 2) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        self._live: set[Task] = set()

    def start(self, task: Task) -> Task:
        self._live.add(task)
        for signal in (task.finished, task.failed, task.was_cancelled):
            signal.connect(lambda *_a, t=task: self._live.discard(t))
        self._pool.start(_Runnable(task))
        return task

    def run(
        self,
        fn: Callable[..., Any],
        on_done: Callable[[Any], None] | None = None,
        on_failed: Callable[[str, str], None] | None = None,
        name: str = "",
    ) -> Task:
        task = Task(fn, name)
        if on_done:
            task.finished.connect(on_done)
        if on_failed:
            task.failed.connect(on_failed)
        return self.start(task)

    def active(self) -> int:
        return len(self._live)

    def wait(self, msecs: int = 5000) -> bool:
        """Block until every task ended (for shutdown and tests)."""
        for task in list(self._live):
            task.cancel()
        return self._pool.waitForDone(msecs)
