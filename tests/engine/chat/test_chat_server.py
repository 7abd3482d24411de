"""`whetstone-engine chat-server` as the app runs it: a real child process speaking JSON lines."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
MESSAGES = [{"role": "user", "content": "What is the capital of Zorvania?"}]
LONG = {"max_new_tokens": 200, "min_new_tokens": 200}  # cannot end early: only a cancel stops it


class Server:
    """The server process; a thread timestamps each stdout line as it arrives."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "chat-server"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.events: queue.Queue = queue.Queue()
        self.stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.events.put((time.perf_counter(), json.loads(line)))  # every line must be JSON
        self.events.put((time.perf_counter(), None))

    def send(self, request) -> float:
        line = request if isinstance(request, str) else json.dumps(request)
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        return time.perf_counter()

    def next(self, timeout: float = 60) -> tuple[float, dict]:
        at, event = self.events.get(timeout=timeout)
        assert event is not None, b"".join(self.stderr).decode()[-2000:]
        return at, event

    def until(self, *types: str, timeout: float = 60) -> tuple[list[dict], float, dict]:
        """Events up to the first of `types`: (the ones before, its arrival time, it)."""
        before = []
        while True:
            at, event = self.next(timeout)
            if event["type"] in types:
                return before, at, event
            before.append(event)

    def reply(self, reply_id: str, settings: dict, messages=MESSAGES) -> tuple[list[str], dict]:
        self.send({"op": "generate", "id": reply_id, "messages": messages, "settings": settings})
        before, _, end = self.until("done", "error")
        assert end["type"] == "done", end
        chunks = [e["text"] for e in before if e["type"] == "chunk"]
        assert all(e["id"] == reply_id for e in before if e["type"] == "chunk")
        return chunks, end

    def close(self) -> int:
        if self.proc.poll() is None:
            self.proc.stdin.close()
        return self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(request):
    srv = Server()  # started first: it imports torch while this process builds the tiny model
    tiny_model_dir = request.getfixturevalue("tiny_model_dir")
    srv.send({"op": "load", "model": str(tiny_model_dir), "adapter": None, "device": "cpu"})
    srv.loading, _, srv.loaded = srv.until("loaded", "error")
    yield srv
    if srv.proc.poll() is None:
        srv.proc.kill()
        srv.proc.wait()


def test_load_reports_progress_and_memory(server, tiny_model_dir):
    assert server.loaded["type"] == "loaded", server.loaded
    assert server.loading and all(e["type"] == "loading" and e["message"] for e in server.loading)
    assert server.loaded["model"] == str(tiny_model_dir)
    assert server.loaded["device"] == "cpu"
    assert server.loaded["memory_bytes"] > 0
    assert server.loaded["weights_bytes"] > 0
    assert server.loaded["seconds"] > 0


def test_generate_streams_chunks_then_done(server):
    chunks, done = server.reply("r1", {"max_new_tokens": 60, "min_new_tokens": 60})
    assert len(chunks) >= 2
    assert done["id"] == "r1"
    assert done["text"] == "".join(chunks)
    stats = done["stats"]
    assert stats["new_tokens"] == 60
    assert stats["stop_reason"] == "max_tokens"
    assert stats["prompt_tokens"] > 0 and stats["time_to_first_token_s"] > 0


def test_cancel_ends_the_reply_with_what_was_sent(server):
    # How fast: benchmarks/chat_stop.py ("app (server)"); here, that it ends and what it says.
    server.send({"op": "generate", "id": "long", "messages": MESSAGES, "settings": LONG})
    first = server.until("chunk")[2]
    assert first["id"] == "long"
    server.send({"op": "cancel", "id": "long"})
    before, _, done = server.until("done", "error")
    assert done["type"] == "done" and done["id"] == "long", done
    assert done["stats"]["stop_reason"] == "cancelled"
    assert 0 < done["stats"]["new_tokens"] < 200
    assert done["text"] == first["text"] + "".join(e["text"] for e in before if e["type"] == "chunk")
    assert all(e["type"] == "chunk" and e["id"] == "long" for e in before)  # nothing else in between


def test_next_generate_is_accepted_as_soon_as_done_arrives(server):
    for n in range(10):  # the app sends the next request the moment it reads `done`
        chunks, done = server.reply(f"quick-{n}", {"max_new_tokens": 1})
        assert done["id"] == f"quick-{n}"


def test_second_generate_is_refused_while_busy(server):
    server.send({"op": "generate", "id": "a", "messages": MESSAGES, "settings": LONG})
    server.send({"op": "generate", "id": "b", "messages": MESSAGES, "settings": LONG})
    _, _, refusal = server.until("error")
    assert refusal["id"] == "b" and refusal["kind"] == "busy", refusal
    server.send({"op": "cancel", "id": "b"})  # not running: ignored
    server.send({"op": "cancel", "id": "a"})
    _, _, done = server.until("done")
    assert done["id"] == "a" and done["stats"]["stop_reason"] == "cancelled"


def test_bad_requests_get_errors_and_the_server_keeps_running(server):
    for line, kind in [
        ("{not json", "protocol"),
        ('{"op": "dance"}', "protocol"),
        ("[1, 2]", "protocol"),
        ('{"op": "generate", "messages": []}', "protocol"),  # no id
    ]:
        server.send(line)
        _, _, error = server.until("error")
        assert error["kind"] == kind and error["message"], (line, error)
    server.send({"op": "generate", "id": "s", "messages": MESSAGES, "settings": {"top_p": 5}})
    _, _, error = server.until("error")
    assert error["id"] == "s" and error["kind"] == "config" and "top_p" in error["message"]
    server.send({"op": "generate", "id": "m", "messages": [], "settings": {}})
    _, _, error = server.until("error")
    assert error["id"] == "m" and error["kind"] == "data"
    chunks, done = server.reply("ok", {"max_new_tokens": 5, "min_new_tokens": 5})
    assert done["stats"]["new_tokens"] == 5


def test_loading_a_folder_that_is_not_a_model_keeps_the_current_one(server, tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    server.send({"op": "load", "model": str(tmp_path)})
    before, _, error = server.until("loaded", "error")
    assert error["type"] == "error" and error["op"] == "load" and error["kind"] == "model"
    assert "config.json is missing" in error["message"] and error["hint"]
    assert not before and error["still_loaded"] is True  # refused before anything was freed
    chunks, done = server.reply("still", {"max_new_tokens": 3, "min_new_tokens": 3})
    assert done["stats"]["new_tokens"] == 3


def test_unload_then_generate_says_no_model(server):
    server.send({"op": "unload"})
    assert server.until("unloaded")[2] == {"type": "unloaded"}
    server.send({"op": "generate", "id": "x", "messages": MESSAGES})
    _, _, error = server.until("error")
    assert error["id"] == "x" and error["kind"] == "not_loaded"


def test_eof_and_quit_exit_0():
    by_eof, by_quit = Server(), Server()
    by_eof.send("{oops")
    assert by_eof.next()[1]["type"] == "error"
    by_quit.send({"op": "quit"})
    assert by_eof.close() == 0
    assert by_quit.proc.wait(timeout=60) == 0
