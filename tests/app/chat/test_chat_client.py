"""ChatClient: the chat model in its own engine process, seen through Qt signals."""

from __future__ import annotations

import os
import signal

import pytest

from app.chat.client import ChatClient

MESSAGES = [{"role": "user", "content": "What is the capital of Zorvania?"}]


@pytest.fixture
def client(qtbot):
    chat = ChatClient()
    chat.start()  # warms torch up while the tiny model is built
    yield chat
    chat.stop()


@pytest.mark.slow  # two chat-server processes
def test_load_generate_and_survive_a_killed_server(qtbot, client, tiny_model_dir):
    progress: list[str] = []
    client.loading.connect(progress.append)
    with qtbot.waitSignal(client.loaded, timeout=60000) as loaded:
        client.load(str(tiny_model_dir), device="cpu")
    info = loaded.args[0]
    assert info["model"] == str(tiny_model_dir) and info["memory_bytes"] > 0
    assert client.model_info == info and progress

    chunks: list[tuple[str, str]] = []
    client.chunk.connect(lambda rid, text: chunks.append((rid, text)))
    with qtbot.waitSignal(client.done, timeout=30000) as done:
        reply_id = client.generate(MESSAGES, {"max_new_tokens": 40, "min_new_tokens": 40})
    done_id, text, stats = done.args
    assert done_id == reply_id and len(chunks) >= 2
    assert all(rid == reply_id for rid, _ in chunks)
    assert text == "".join(t for _, t in chunks)
    assert stats["new_tokens"] == 40 and stats["stop_reason"] == "max_tokens"
    assert client.busy_reply is None

    with qtbot.waitSignal(client.chunk, timeout=30000):
        reply_id = client.generate(MESSAGES, {"max_new_tokens": 200, "min_new_tokens": 200})
    with qtbot.waitSignal(client.done, timeout=5000) as done:
        client.cancel(reply_id)
    assert done.args[0] == reply_id and done.args[2]["stop_reason"] == "cancelled"

    # A reply running when the server dies ends with an error, then `ended` comes.
    errors: list[tuple] = []
    client.error.connect(lambda *args: errors.append(args))
    with qtbot.waitSignal(client.chunk, timeout=30000):
        long_id = client.generate(MESSAGES, {"max_new_tokens": 200, "min_new_tokens": 200})
    with qtbot.waitSignal(client.ended, timeout=10000) as ended:
        os.kill(client.pid(), signal.SIGKILL)
    code, _line = ended.args
    assert code == -1
    assert not client.is_running() and client.model_info is None
    assert [(e[0], e[1]) for e in errors] == [(long_id, "ended")]

    # The app is alive and the client usable: asking for a reply now reports "not loaded".
    with qtbot.waitSignal(client.error, timeout=5000) as refused:
        reply_id = client.generate(MESSAGES, {})
    assert refused.args[:2] == [reply_id, "not_loaded"]


def test_stop_quits_politely(qtbot, client):
    with qtbot.waitSignal(client.ended, timeout=10000) as ended:
        client.stop()
    assert ended.args[0] == 0
    assert not client.is_running()
