"""Work off the UI thread: Python functions in a thread pool, and engine child processes.

Worker code never touches widgets. It reports through Qt signals, which Qt delivers on
the UI thread, so slow work (folder scans, copies, model conversion) never freezes it.
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import (
    QObject,
    QProcess,
    QProcessEnvironment,
    QRunnable,
    QThreadPool,
    QTimer,
    Signal,
)

from engine.cli.launch import engine_command
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
            result = self._fn(lambda done, total, msg="": self.progress.emit(done, total, msg), self.is_cancelled)
        except Cancelled:
            self.was_cancelled.emit()
        except UserError as exc:
            self.failed.emit(exc.message, exc.hint)
        except OSError as exc:  # a folder gone, not writable, or a full disk: the user can act on it
            where = f" {exc.filename}" if exc.filename else ""
            self.failed.emit(f"Cannot use{where}: {exc.strerror or exc}.",
                             "Check that the folder exists, that you may write to it and that the disk is not full.")
        except Exception as exc:  # a bug: report it, keep the app alive
            log.error("task %s failed:\n%s", self.name, traceback.format_exc())
            self.failed.emit(f"{type(exc).__name__}: {exc}", "This is a bug in Whetstone; Help → Diagnostics has the details to report.")
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

    def run(self, fn: Callable[..., Any], on_done: Callable[[Any], None] | None = None,
            on_failed: Callable[[str, str], None] | None = None, name: str = "") -> Task:
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


class EngineProcess(QObject):
    """`whetstone-engine ARGS` as a child process; stdout JSON lines become `message` signals.

    The engine is the same CLI a user runs headless; a crash or a kill there never takes
    the GUI down. `ended(exit_code, error_line)` comes once, also after kill().
    """

    message = Signal(dict)
    ended = Signal(int, str)

    def __init__(self, args: list[str], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.args = args
        self._proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        self._proc.setProcessEnvironment(env)
        self._proc.readyReadStandardOutput.connect(self._on_stdout)
        self._proc.finished.connect(self._on_finished)
        self._proc.errorOccurred.connect(self._on_error)
        self._buffer = b""
        self._stdout_text: list[str] = []
        self._ended = False

    def start(self) -> None:
        program, *argv = engine_command(*self.args)
        self._proc.start(program, argv)

    def kill(self, grace_ms: int = 5000) -> None:
        """Ask the engine to stop (SIGTERM: it cleans up after itself), then force it after `grace_ms`."""
        if self._proc.state() == QProcess.ProcessState.NotRunning:
            return
        self._proc.terminate()
        QTimer.singleShot(grace_ms, self._force_kill)

    def stop_now(self, wait_ms: int = 2000) -> None:
        """For shutdown: SIGTERM, a short wait for the engine to clean up, then SIGKILL."""
        if self._proc.state() == QProcess.ProcessState.NotRunning:
            return
        self._proc.terminate()
        if not self._proc.waitForFinished(wait_ms):
            self._proc.kill()
            self._proc.waitForFinished(1000)

    def _force_kill(self) -> None:
        if self._proc.state() != QProcess.ProcessState.NotRunning:
            self._proc.kill()

    def is_running(self) -> bool:
        return self._proc.state() != QProcess.ProcessState.NotRunning

    def wait(self, msecs: int = 10000) -> bool:
        return self._proc.waitForFinished(msecs)

    def output_text(self) -> str:
        """Plain (non-JSON) stdout lines, e.g. the folder `demo-model` prints."""
        return "\n".join(self._stdout_text)

    def _on_stdout(self) -> None:
        self._buffer += bytes(self._proc.readAllStandardOutput())
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            text = raw.decode("utf-8", "replace").strip()
            if not text:
                continue
            try:
                value = json.loads(text)
            except ValueError:
                value = None
            if isinstance(value, dict):
                self.message.emit(value)
            else:
                self._stdout_text.append(text)

    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._on_stdout()
        if self._buffer.strip():
            self._stdout_text.append(self._buffer.decode("utf-8", "replace").strip())
        stderr = bytes(self._proc.readAllStandardError()).decode("utf-8", "replace")
        error_lines = [ln for ln in stderr.splitlines() if ln.startswith(("error:", "internal error:"))]
        if status == QProcess.ExitStatus.CrashExit:
            line = error_lines[-1] if error_lines else "The engine process was stopped."
            self._end(-1, line)
        else:
            self._end(code, error_lines[-1] if error_lines else (stderr.strip().splitlines() or [""])[-1])

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._end(-1, f"The engine could not be started ({engine_command()[0]}).")

    def _end(self, code: int, line: str) -> None:
        if not self._ended:
            self._ended = True
            self.ended.emit(code, line)
