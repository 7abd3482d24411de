"""The one wrapper for engine child processes the window waits on: `whetstone-engine ARGS`.

Every feature that runs the engine beside the window (demo model, device probe, fit check,
row review, GGUF import, export, cluster bundle, chat server) goes through EngineProcess: JSON
lines on stdout become signals, the `error:` line on stderr is the message, and a crash or a
kill in the child never takes the GUI down. (Training runs are different: they must outlive
the window, so app.train.supervisor starts them detached.)
"""

from __future__ import annotations

import json

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from engine.cli.launch import engine_command, engine_environment
from engine.cli.protocol import EXIT_NO_STATUS, last_error_line


def engine_process_environment() -> QProcessEnvironment:
    """engine.cli.launch.engine_environment for a QProcess (unbuffered; tcmalloc where it helps)."""
    env = QProcessEnvironment()
    for key, value in engine_environment().items():
        env.insert(key, value)
    return env


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
        self._proc.setProcessEnvironment(engine_process_environment())
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
        error = last_error_line(stderr)
        if status == QProcess.ExitStatus.CrashExit:
            self._end(EXIT_NO_STATUS, error or "The engine process was stopped.")
        else:
            self._end(code, error or (stderr.strip().splitlines() or [""])[-1])

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._end(EXIT_NO_STATUS, f"The engine could not be started ({engine_command()[0]}).")

    def _end(self, code: int, line: str) -> None:
        if not self._ended:
            self._ended = True
            self.ended.emit(code, line)
