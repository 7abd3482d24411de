"""One chat model in its own engine process (`whetstone-engine chat-server`), driven by JSON lines.

torch, generation and any out-of-memory crash stay in the child; the GUI only writes request
lines to its stdin and turns the event lines on its stdout into signals (see
`engine.chat.server` for the protocol). Nothing here blocks the UI thread except `stop()`,
which is meant for shutdown. Compare mode runs two clients.

Every `generate()` ends in exactly one `done` or one `error` with its reply id: if the
process ends while a reply is running, `error(reply_id, "ended", ...)` comes before `ended`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import deque
from typing import Any

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

from app.infra.engine_process import engine_process_environment
from engine.cli.launch import engine_command

log = logging.getLogger(__name__)


class ChatClient(QObject):
    """A chat-server child process: requests in, signals out (delivered on the UI thread)."""

    loading = Signal(str)  # progress message
    loaded = Signal(dict)  # model, adapter, device, memory_bytes, memory_kind, weights_bytes, seconds
    unloaded = Signal()
    chunk = Signal(str, str)  # reply id, text
    done = Signal(str, str, dict)  # reply id, full text, stats (ReplyStats.to_dict())
    error = Signal(str, str, str, str)  # op or reply id, kind, message, hint
    ended = Signal(int, str)  # exit code (-1: crashed or killed), last stderr line

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._proc: QProcess | None = None
        self._buffer = b""
        self._stderr_tail: deque[str] = deque(maxlen=20)
        self._stderr_partial = b""
        self._reply: str | None = None
        self.model_info: dict[str, Any] | None = None
        """The `loaded` event of the model in the server now; None when none is loaded."""

    # ------------------------------------------------------------------ requests

    def start(self) -> None:
        """Start the server process (it warms its libraries up at once); no-op if running."""
        if self.is_running():
            return
        self._buffer, self._stderr_partial = b"", b""
        self._stderr_tail.clear()
        proc = QProcess(self)
        proc.setProcessEnvironment(engine_process_environment())
        proc.readyReadStandardOutput.connect(self._on_stdout)
        proc.readyReadStandardError.connect(self._on_stderr)
        proc.finished.connect(self._on_finished)
        proc.errorOccurred.connect(self._on_process_error)
        self._proc = proc
        program, *argv = engine_command("chat-server")
        proc.start(program, argv)

    def load(self, model: str, adapter: str | None = None, device: str = "auto") -> None:
        """Load `model` (+ adapter), replacing the loaded one; starts the server if needed."""
        self.start()
        self._send({"op": "load", "model": model, "adapter": adapter, "device": device})

    def generate(self, messages: list[dict], settings: dict) -> str:
        """Ask for the assistant's reply to `messages`; returns the new reply's id."""
        reply_id = uuid.uuid4().hex[:12]
        if not self.is_running():
            QTimer.singleShot(
                0,
                lambda: self.error.emit(
                    reply_id,
                    "not_loaded",
                    "No model is loaded.",
                    "Load a model before sending a message.",
                ),
            )
            return reply_id
        if self._reply is None:
            self._reply = reply_id  # a second one is refused by the server ("busy")
        plain = [{"role": m["role"], "content": m["content"]} for m in messages]
        self._send({"op": "generate", "id": reply_id, "messages": plain, "settings": settings})
        return reply_id

    def cancel(self, reply_id: str) -> None:
        """Stop that reply after the current token; its `done` (stop_reason "cancelled") follows."""
        if self.is_running():
            self._send({"op": "cancel", "id": reply_id})

    def unload(self) -> None:
        if self.is_running():
            self._send({"op": "unload"})

    def stop(self, wait_ms: int = 3000) -> None:
        """Ask the server to quit (cancelling a running reply), then kill it after `wait_ms`."""
        proc = self._proc
        if proc is None or proc.state() == QProcess.ProcessState.NotRunning:
            return
        if self._reply is not None:
            self.cancel(self._reply)
        self._send({"op": "quit"})
        proc.closeWriteChannel()
        if not proc.waitForFinished(wait_ms):
            proc.kill()
            proc.waitForFinished(1000)

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.state() != QProcess.ProcessState.NotRunning

    def pid(self) -> int:
        """The server's process id (0 when none runs)."""
        return int(self._proc.processId()) if self.is_running() else 0

    @property
    def busy_reply(self) -> str | None:
        """The id of the reply being generated, if any."""
        return self._reply

    def _send(self, request: dict[str, Any]) -> None:
        # QProcess buffers the write and hands it over when the pipe takes it: never blocks.
        self._proc.write((json.dumps(request, ensure_ascii=False) + "\n").encode("utf-8"))

    # ------------------------------------------------------------------ events

    def _on_stdout(self) -> None:
        if self._proc is None:
            return
        self._buffer += bytes(self._proc.readAllStandardOutput())
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            if not raw.strip():
                continue
            try:
                event = json.loads(raw.decode("utf-8", "replace"))
            except ValueError:
                log.warning("chat server wrote a non-JSON line: %r", raw[:200])
                continue
            if isinstance(event, dict):
                self._dispatch(event)

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "chunk":
            self.chunk.emit(str(event.get("id", "")), str(event.get("text", "")))
        elif kind == "done":
            reply_id = str(event.get("id", ""))
            self._end_reply(reply_id)
            self.done.emit(reply_id, str(event.get("text", "")), dict(event.get("stats") or {}))
        elif kind == "loading":
            self.loading.emit(str(event.get("message", "")))
        elif kind == "loaded":
            self.model_info = event
            self.loaded.emit(event)
        elif kind == "unloaded":
            self.model_info = None
            self.unloaded.emit()
        elif kind == "error":
            reply_id = event.get("id")
            if event.get("op") == "load" and not event.get("still_loaded"):
                self.model_info = None
            if reply_id is not None:
                self._end_reply(str(reply_id))
            self.error.emit(
                str(reply_id if reply_id is not None else event.get("op") or ""),
                str(event.get("kind", "internal")),
                str(event.get("message", "")),
                str(event.get("hint", "")),
            )

    def _end_reply(self, reply_id: str) -> None:
        if self._reply == reply_id:
            self._reply = None

    def _on_stderr(self) -> None:
        if self._proc is None:
            return
        self._stderr_partial += bytes(self._proc.readAllStandardError())
        *lines, self._stderr_partial = self._stderr_partial.split(b"\n")
        for raw in lines:
            text = raw.decode("utf-8", "replace").strip()
            if text:
                self._stderr_tail.append(text)

    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._on_stdout()
        self._on_stderr()
        if self._stderr_partial.strip():
            self._stderr_tail.append(self._stderr_partial.decode("utf-8", "replace").strip())
        crashed = status == QProcess.ExitStatus.CrashExit
        line = self._stderr_tail[-1] if self._stderr_tail else ""
        if crashed and not line:
            line = "The chat engine process was stopped."
        self._finish(-1 if crashed else code, line)

    def _on_process_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._finish(-1, f"The chat engine could not be started ({engine_command()[0]}).")

    def _finish(self, code: int, line: str) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return  # already reported (FailedToStart is followed by no finished, but be safe)
        proc.deleteLater()
        self.model_info = None
        if self._reply is not None:
            reply_id, self._reply = self._reply, None
            self.error.emit(
                reply_id,
                "ended",
                "The chat engine stopped before the reply was complete.",
                line or "Load the model again to go on.",
            )
        self.ended.emit(code, line)
