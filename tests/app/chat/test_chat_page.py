"""The Chat tab on the tiny model: streaming in chunks, Stop, and compare mode really using the adapter."""

from __future__ import annotations

import json
import shutil

import pytest
from testkit.tiny_model import FACTS


@pytest.fixture
def chat_page(qtbot, home, tiny_model_dir, trained_run):
    from app.chat.page import ChatPage
    from engine.workspace import Workspace

    workspace = Workspace(home)
    project = workspace.create_project("Chatting", model=str(tiny_model_dir))
    shutil.copytree(trained_run[1], project / "runs" / "run-1")
    page = ChatPage()
    qtbot.addWidget(page)
    page.resize(1300, 800)
    page.show()
    page.show_project(workspace.summarize(project))
    yield page
    page.shutdown()


def load(qtbot, page) -> None:
    page.load()
    qtbot.waitUntil(lambda: all(side.ready() for side in page._active_sides()), timeout=60000)


def reply_of(side) -> str:
    return side.transcript.messages()[-1]["content"]


def test_replies_stream_in_chunks_and_stop_ends_them(chat_page, qtbot):
    page = chat_page
    side = page.sides[0]
    assert side.adapter.currentText() == "run-1: final adapter"
    load(qtbot, page)
    assert side.state.text().startswith("Loaded:") and "adapter" in side.state.text()
    chunks: list[str] = []
    side.client.chunk.connect(lambda _id, text: chunks.append(text))
    page.sampling.set_settings({"max_new_tokens": 48, "min_new_tokens": 48})
    page.send(FACTS[1][0])
    qtbot.waitUntil(lambda: not side.generating(), timeout=60000)
    assert len(chunks) >= 2 and reply_of(side) == "".join(chunks)
    stats = side.transcript.messages()[-1]["stats"]
    assert stats["new_tokens"] == 48 and stats["time_to_first_token_s"] > 0

    page.sampling.set_settings({"max_new_tokens": 4000, "min_new_tokens": 4000})
    first = len(chunks)
    page.send("Tell me a very long story.")
    qtbot.waitUntil(lambda: len(chunks) > first, timeout=30000)
    assert page.composer.button.text() == "Stop"
    page.stop()  # how fast it ends is measured by benchmarks/chat_stop.py
    qtbot.waitUntil(lambda: not side.generating(), timeout=5000)
    stats = side.transcript.messages()[-1]["stats"]
    assert stats["stop_reason"] == "cancelled" and 1 <= stats["new_tokens"] < 4000
    assert page.composer.button.text() == "Send"


def test_compare_mode_and_prompt_sets_use_base_and_tuned(chat_page, qtbot):
    page = chat_page
    page.compare.setChecked(True)
    tuned, base = page.sides
    assert tuned.adapter.currentData() is not None and base.adapter.currentData() is None
    load(qtbot, page)
    page.sampling.set_settings({"max_new_tokens": 12})
    question, answer = FACTS[0]
    page.send(question)
    qtbot.waitUntil(lambda: not tuned.generating() and not base.generating(), timeout=60000)
    assert reply_of(tuned) == answer  # the adapter taught it the fact
    assert reply_of(base) != answer  # the base model never saw it
    assert (
        tuned.transcript.messages()[-2]
        == base.transcript.messages()[-2]
        == {"role": "user", "content": question}
    )

    # A prompt set on the same two loaded models: replies in a grid, the base model first.
    dialog = page.prompt_sets_dialog()
    qtbot.addWidget(dialog)
    dialog.name.setText("Facts")
    dialog.prompts.setPlainText("\n".join(q for q, _a in FACTS))
    dialog.run()
    qtbot.waitUntil(lambda: not dialog.running(), timeout=120000)
    for row, (_question, answer) in enumerate(FACTS):
        assert dialog.reply_at(row, "run-1: final adapter") == answer
        assert dialog.reply_at(row, "Base model (no adapter)") != answer
    assert dialog.grid.horizontalHeaderItem(3).text() == "Base model (no adapter)"  # the base first
    reopened = page.prompt_sets_dialog()  # saved with the project: set and replies come back
    qtbot.addWidget(reopened)
    reopened.sets.setCurrentRow(0)
    assert reopened.prompts.toPlainText().splitlines() == [q for q, _a in FACTS]
    assert reopened.reply_at(2, "run-1: final adapter") == FACTS[2][1]


def test_conversations_are_saved_reopened_and_become_training_rows(chat_page, qtbot, home):
    from app.data.page import DataPage
    from engine.chat.store import list_conversations
    from engine.workspace import Workspace

    page = chat_page
    project = page.project.path
    data_page = DataPage()  # the Data tab receives the row, as in the main window
    qtbot.addWidget(data_page)
    page.rowForDataset.connect(data_page.add_chat_row)
    load(qtbot, page)
    page.sampling.set_settings({"max_new_tokens": 12})
    question, answer = FACTS[2]
    page.send(question)
    qtbot.waitUntil(lambda: not page.sides[0].generating(), timeout=60000)
    saved = list_conversations(project)
    assert len(saved) == 1 and saved[0].title == question and saved[0].message_count == 2

    # The user corrects the reply; the correction is saved and is what the training row holds.
    messages = page.sides[0].transcript.messages()
    messages[1]["content"] = "Corrected."
    page.sides[0].transcript.set_messages(messages)
    page.sides[0].transcript.edited.emit(1, "Corrected.")  # what the reply's Edit → Save does
    target = project / "datasets" / "chat-rows.jsonl"
    page.choose_dataset_for_row = lambda messages: target
    with qtbot.waitSignal(data_page.status, timeout=20000):
        page.add_to_dataset()
    assert json.loads(target.read_text()) == {
        "messages": [{"role": "user", "content": question}, {"role": "assistant", "content": "Corrected."}]
    }

    page.new_chat()
    assert page.sides[0].transcript.messages() == []
    page.open_conversation(saved[0].id)
    assert page.sides[0].transcript.messages()[1]["content"] == "Corrected."
    assert page.sides[0].adapter.currentText() == "run-1: final adapter"
    assert Workspace(home).summarize(project).datasets  # the new dataset is in the project
