"""The row editor: fields per shape, debounced commits of whole records, raw JSON, broken lines."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtTest import QTest

from app.data.row_editor import RowEditor

CHAT = {
    "id": 7,
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
    ],
    "meta": {"source": "demo"},
}


@pytest.fixture
def editor(qtbot):
    widget = RowEditor()
    qtbot.addWidget(widget)
    widget.resize(460, 640)
    widget.show()
    emitted: list[dict] = []
    widget.edited.connect(emitted.append)
    widget.emitted = emitted
    return widget


def type_at_end(box, text: str) -> None:
    box.edit.moveCursor(QTextCursor.MoveOperation.End)
    QTest.keyClicks(box.edit, text)


def test_typing_commits_once_after_a_pause_with_the_full_record(editor, qtbot):
    editor.set_record(CHAT, "messages", label="Row 1 · line 1")
    assert editor.title.text() == "Row 1 · line 1"
    assert [c.role_combo.currentText() for c in editor.cards] == ["system", "user", "assistant"]
    with qtbot.waitSignal(editor.edited, timeout=3000) as blocker:
        type_at_end(editor.cards[2].content, " there")
        assert editor.emitted == []  # still typing
    new = blocker.args[0]
    assert editor.emitted == [new]
    assert new["messages"][2] == {"role": "assistant", "content": "Hello there"}
    assert new["id"] == 7 and new["meta"] == {"source": "demo"}
    assert list(new) == ["id", "messages", "meta"]
    assert CHAT["messages"][2]["content"] == "Hello"  # the caller's record is not mutated
    assert editor.commit() is False


def test_focus_out_commits_at_once(editor, qtbot):
    editor.set_record(CHAT, "messages")
    box = editor.cards[1].content
    box.edit.setFocus()
    type_at_end(box, "!")
    editor.cards[2].content.edit.setFocus()
    qtbot.waitUntil(lambda: len(editor.emitted) == 1, timeout=1000)
    assert editor.emitted[0]["messages"][1]["content"] == "Hi!"


def test_commit_without_changes_and_unchanged_odd_values(editor):
    odd = {"messages": [{"role": "tool", "content": ["a", 1], "name": "x"}], "extra": None}
    editor.set_record(odd, "messages")
    card = editor.cards[0]
    assert card.role_combo.currentText() == "tool"
    assert card.content.warning.isVisibleTo(editor)
    assert card.content.edit.toPlainText() == '["a", 1]'
    assert editor.record() == odd
    assert editor.commit() is False
    type_at_end(card.content, " ")
    assert editor.commit() is True
    assert editor.emitted[0]["messages"][0] == {"role": "tool", "content": '["a", 1] ', "name": "x"}
    assert editor.commit() is False


def test_structural_changes_emit_immediately(editor):
    editor.set_record(CHAT, "messages")
    editor.add_button.click()
    turns = editor.emitted[-1]["messages"]
    assert turns[-1] == {"role": "user", "content": ""} and len(turns) == 4
    editor.cards[3].role_combo.setCurrentText("assistant")
    assert editor.emitted[-1]["messages"][3]["role"] == "assistant"
    editor.cards[1].down_button.click()
    assert [t["content"] for t in editor.emitted[-1]["messages"]] == [
        "Be brief.",
        "Hello",
        "Hi",
        "",
    ]
    assert editor.cards[0].up_button.isEnabled() is False
    editor.cards[0].remove_button.click()
    last = editor.emitted[-1]
    assert [t["role"] for t in last["messages"]] == ["assistant", "user", "assistant"]
    assert last["id"] == 7 and last["meta"] == {"source": "demo"}
    assert len(editor.emitted) == 4
    editor.add_button.click()
    assert editor.emitted[-1]["messages"][-1]["role"] == "user"


def test_sharegpt_with_mapped_column(editor):
    record = {"convo": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}], "id": "x"}
    editor.set_record(record, "sharegpt", {"conversations": "convo"})
    assert [c.role_combo.currentText() for c in editor.cards] == ["human", "gpt"]
    assert [editor.cards[0].role_combo.itemText(i) for i in range(3)] == ["system", "human", "gpt"]
    editor.add_button.click()
    assert editor.emitted[-1] == {
        "convo": [
            {"from": "human", "value": "Q"},
            {"from": "gpt", "value": "A"},
            {"from": "human", "value": ""},
        ],
        "id": "x",
    }
    assert "conversations" not in editor.emitted[-1]


def test_alpaca_fields_missing_and_mapped(editor):
    record = {"q": "Add", "input": 3, "output": "4"}
    editor.set_record(record, "alpaca", {"instruction": "q"})
    assert list(editor.fields) == ["instruction", "input", "output", "system"]
    assert editor.fields["instruction"].edit.toPlainText() == "Add"
    assert editor.fields["input"].warning.isVisibleTo(editor)
    assert editor.fields["system"].edit.toPlainText() == ""
    assert editor.commit() is False
    type_at_end(editor.fields["instruction"], " 1+3")
    type_at_end(editor.fields["input"], "!")
    assert not editor.fields["input"].warning.isVisibleTo(editor)
    assert editor.commit() is True
    assert editor.emitted[-1] == {"q": "Add 1+3", "input": "3!", "output": "4"}


def test_prompt_completion_with_mapping(editor):
    editor.set_record(
        {"question": "2+2?", "answer": "4"},
        "prompt_completion",
        {"prompt": "question", "completion": "answer"},
    )
    type_at_end(editor.fields["completion"], ".")
    assert editor.record() == {"question": "2+2?", "answer": "4."}
    assert editor.commit() is True
    assert editor.emitted == [{"question": "2+2?", "answer": "4."}]


def test_set_record_commits_a_pending_edit_first(editor):
    editor.set_record({"text": "one", "id": 1}, "text")
    type_at_end(editor.fields["text"], "!")
    editor.set_record({"text": "two", "id": 2}, "text")
    assert editor.emitted == [{"text": "one!", "id": 1}]
    assert editor.fields["text"].edit.toPlainText() == "two"
    assert editor.commit() is False


def test_raw_json_apply_valid_and_invalid(editor):
    editor.set_record(CHAT, "messages")
    editor.tabs.setCurrentIndex(1)
    assert '"content": "Hello"' in editor.raw_edit.toPlainText()
    assert not editor.apply_button.isEnabled()
    editor.raw_edit.setPlainText('{"id": 7,\n "text": oops}')
    assert editor.apply_button.isEnabled()
    editor.apply_button.click()
    assert editor.emitted == []
    assert "line 2, column 10" in editor.raw_error.text()
    editor.raw_edit.setPlainText("[1, 2]")
    editor.apply_button.click()
    assert editor.emitted == [] and "object" in editor.raw_error.text()
    editor.raw_edit.setPlainText('{"id": 8, "messages": [{"role": "user", "content": "Yo"}]}')
    editor.apply_button.click()
    assert editor.emitted == [{"id": 8, "messages": [{"role": "user", "content": "Yo"}]}]
    assert editor.raw_error.text() == "" and not editor.apply_button.isEnabled()
    assert [c.content.edit.toPlainText() for c in editor.cards] == ["Yo"]


def test_tab_switch_syncs_and_discards_unapplied_raw_text(editor):
    editor.set_record(CHAT, "messages")
    type_at_end(editor.cards[2].content, "?")
    editor.tabs.setCurrentIndex(1)
    assert '"Hello?"' in editor.raw_edit.toPlainText()
    assert len(editor.emitted) == 1  # typing is saved before the JSON view shows it
    editor.raw_edit.setPlainText("{bad")
    editor.apply_button.click()
    assert editor.raw_error.text()
    editor.tabs.setCurrentIndex(0)
    assert editor.raw_error.text() == ""
    editor.tabs.setCurrentIndex(1)
    assert '"Hello?"' in editor.raw_edit.toPlainText()
    assert len(editor.emitted) == 1


def test_broken_line_is_fixed_in_raw_json(editor):
    editor.set_record({"__broken__": '{"text": "half'}, "text", label="Row 3 · line 3")
    assert not editor.tabs.isTabEnabled(0)
    assert editor.tabs.currentIndex() == 1
    assert "not valid JSON" in editor.note.text()
    assert editor.raw_edit.toPlainText() == '{"text": "half'
    assert editor.commit() is False
    editor.raw_edit.setPlainText('{"text": "half done"}')
    editor.apply_button.click()
    assert editor.emitted == [{"text": "half done"}]
    assert editor.tabs.isTabEnabled(0) and editor.note.isHidden()
    assert editor.fields["text"].edit.toPlainText() == "half done"


def test_none_disables_and_big_conversations_work(editor):
    editor.set_record(None, "messages")
    assert editor.record() is None and not editor.tabs.isEnabled()
    assert editor.title.text() == "Select a row"
    assert editor.commit() is False
    turns = [{"role": ("user", "assistant")[i % 2], "content": f"t{i}"} for i in range(205)]
    editor.set_record({"messages": turns}, "messages")
    assert len(editor.cards) == 205 and editor.record() == {"messages": turns}
    assert editor.emitted == []


def test_resetting_the_shown_record_keeps_the_widgets(editor, qtbot):
    editor.set_record(CHAT, "messages")
    editor.edited.connect(lambda rec: editor.set_record(rec, "messages", label="again"))
    card = editor.cards[1]
    type_at_end(card.content, "!")
    assert editor.commit() is True
    assert editor.cards[1] is card and editor.title.text() == "again"
    QTest.keyClick(card.content.edit, Qt.Key.Key_Backspace)
    assert editor.record()["messages"][1]["content"] == "Hi"


def test_rows_of_other_lengths_and_shapes_reuse_widgets(editor):
    editor.set_record(CHAT, "messages")
    first = editor.cards[0]
    editor.set_record({"messages": [{"role": "odd", "content": "x"}]}, "messages")
    assert editor.cards == [first] and first.role_combo.currentText() == "odd"
    four = {"messages": [{"role": r, "content": r} for r in ("user", "assistant") * 2]}
    editor.set_record(four, "messages")
    assert first.role_combo.count() == 3  # the odd role of the previous row is gone
    assert editor.record() == four
    assert [editor._layout.indexOf(c) for c in editor.cards] == [0, 1, 2, 3]
    assert all(c.isVisibleTo(editor) for c in editor.cards)
    assert not editor._timer.isActive()  # filling the boxes is not typing
    editor.set_record({"text": "t"}, "text")
    assert editor.fields["text"].edit.toPlainText() == "t" and editor.cards == []
    editor.set_record(CHAT, "messages")
    assert editor.record() == CHAT
    assert editor.emitted == []


def test_missing_conversation_stays_missing_until_a_turn_is_added(editor):
    editor.set_record({"id": 1}, "messages")
    assert editor.cards == [] and editor.commit() is False
    editor.add_button.click()
    assert editor.emitted == [{"id": 1, "messages": [{"role": "user", "content": ""}]}]
    editor.set_record({"messages": "oops"}, "messages")
    assert not editor.tabs.isTabEnabled(0) and "not a list" in editor.note.text()
    assert editor.commit() is False
