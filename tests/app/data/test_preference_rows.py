"""The Data tab on preference data: pairs (prompt/chosen/rejected) and rated replies (KTO's
prompt/completion/label) in the table, the row editor (undo, journal, save) and the side-by-side
view of what each side trains."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QLabel

from engine.data.edit_journal import read_pending

PAIRS = [
    {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon."},
    {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Two plus two?"}],
        "chosen": "Four.",
        "rejected": "Five.",
    },
    {"prompt": "Colour of the sky?", "chosen": "Blue.", "rejected": "Blue."},
]
RATED = [
    {"prompt": "Capital of France?", "completion": "Paris.", "label": True},
    {"prompt": "Capital of Spain?", "completion": "Lisbon.", "label": False},
    {"prompt": "Two plus two?", "completion": "Four.", "label": "yes"},
]


@pytest.fixture
def open_rows(qtbot, home):
    """A shown Data page on a fresh project whose dataset holds `rows`; returns (page, data file)."""
    from app.data.page import DataPage
    from engine.workspace import Workspace

    pages = []

    def make(rows, model=None):
        source = home.parent / "pairs.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in rows))
        workspace = Workspace(home)
        project = workspace.create_project("Pairs", model=model, dataset=source)
        page = DataPage()
        qtbot.addWidget(page)
        page.resize(1200, 800)
        page.show()
        page.show_project(workspace.summarize(project))
        qtbot.waitUntil(lambda: page.document is not None and not page.reviewing(), timeout=90000)
        pages.append(page)
        return page, project / "datasets" / "pairs.jsonl"

    yield make
    for page in pages:
        page.shutdown()


def cells(page, column: int) -> list[str]:
    model = page.table_model
    return [model.data(model.index(r, column)) for r in range(model.rowCount())]


def retype(page, qtbot, box, text: str) -> None:
    """Replace a box's text the way a person does, and wait for the edit to reach the document."""
    box.edit.selectAll()
    with qtbot.waitSignal(page.document.rows_changed, timeout=5000):
        qtbot.keyClicks(box.edit, text)
        page.editor.commit()


def test_pairs_show_in_columns_and_edit_with_undo_journal_and_save(open_rows, qtbot):
    page, data = open_rows(PAIRS)
    document = page.document
    assert page.table_model.headers == ["Row", "Prompt", "Chosen", "Rejected", "Tokens", "Problem"]
    assert cells(page, 1) == ["Capital of France?", "Two plus two?", "Colour of the sky?"]
    assert cells(page, 2) == ["Paris.", "Four.", "Blue."] and cells(page, 3) == ["Lyon.", "Five.", "Blue."]
    # The pair whose answers are the same is a problem, in the table and the problems panel.
    assert cells(page, 5) == ["", "", "same answers"]
    assert document.issue_counts() == {"same_answers": 1}
    assert "Problems (1)" == page.bottom.tabText(0)

    page.view.select_id(0)
    editor = page.editor
    chosen, rejected = editor.fields["chosen"], editor.fields["rejected"]
    assert editor.fields["prompt"].edit.toPlainText() == "Capital of France?"
    assert (chosen.edit.toPlainText(), rejected.edit.toPlainText()) == ("Paris.", "Lyon.")
    left, right = (box.mapTo(editor, QPoint(0, 0)) for box in (chosen, rejected))
    assert right.x() > left.x() + chosen.width() // 2 and right.y() == left.y()  # side by side

    retype(page, qtbot, chosen, "Paris, the capital.")
    edited = {**PAIRS[0], "chosen": "Paris, the capital."}
    assert document.store.record(0) == edited and document.is_dirty()
    assert read_pending(data).ops[-1]["records"][0] == edited  # journaled at once
    assert cells(page, 2)[0] == "Paris, the capital."
    page.toolbar.undo_action.trigger()
    assert document.store.record(0) == PAIRS[0] and not document.is_dirty()
    assert editor.fields["chosen"].edit.toPlainText() == "Paris."  # the editor follows undo
    page.toolbar.redo_action.trigger()
    assert editor.fields["chosen"].edit.toPlainText() == "Paris, the capital."

    # A prompt given as messages is edited as turn cards; the answers stay as they were.
    page.view.select_id(1)
    assert [card.role() for card in editor.cards] == ["system", "user"] and "prompt" not in editor.fields
    retype(page, qtbot, editor.cards[1].content, "Two plus three?")
    assert document.store.record(1)["prompt"][1] == {"role": "user", "content": "Two plus three?"}
    assert document.store.record(1)["chosen"] == "Four."

    # The same-answers problem goes once the rejected answer differs.
    page.view.select_id(2)
    retype(page, qtbot, editor.fields["rejected"], "Green.")
    assert document.issue_counts() == {}

    page.add_action.trigger()  # a new, empty pair after row 3
    assert document.store.record(int(document.store.order[3])) == {"prompt": "", "chosen": "", "rejected": ""}
    assert editor.fields["chosen"].edit.toPlainText() == ""
    assert page.files.save()
    qtbot.waitUntil(lambda: not document.is_dirty(), timeout=10000)
    expected = [
        edited,
        {**PAIRS[1], "prompt": [PAIRS[1]["prompt"][0], {"role": "user", "content": "Two plus three?"}]},
        {**PAIRS[2], "rejected": "Green."},
        {"prompt": "", "chosen": "", "rejected": ""},
    ]
    assert data.read_text() == "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in expected)


def test_answers_as_one_assistant_message_are_edited_as_text(qtbot):
    from app.data.row_editor import RowEditor

    editor = RowEditor()
    qtbot.addWidget(editor)
    row = {
        "prompt": "Hi",
        "chosen": [{"role": "assistant", "content": "Hello."}],
        "rejected": [{"role": "assistant", "content": "Go away."}],
    }
    editor.set_record(row, "preference")
    box = editor.fields["chosen"]
    assert box.edit.toPlainText() == "Hello." and box.warning is None  # not shown as JSON
    assert editor.record() == row and editor.commit() is False
    box.edit.setPlainText("Hello there.")
    assert editor.commit() is True
    assert editor.record()["chosen"] == [{"role": "assistant", "content": "Hello there."}]
    assert editor.record()["rejected"] == row["rejected"]


def test_mapped_columns_and_a_prompt_turn_added(qtbot):
    from app.data.row_editor import RowEditor

    editor = RowEditor()
    qtbot.addWidget(editor)
    editor.show()
    emitted = []
    editor.edited.connect(emitted.append)
    columns = {"prompt": "question", "chosen": "good", "rejected": "bad"}
    row = {"id": 3, "question": [{"role": "user", "content": "Hi"}], "good": "Hello.", "bad": "Bye."}
    editor.set_record(row, "preference", columns)
    titles = {label.text() for label in editor.scroll.widget().findChildren(QLabel)}
    assert {"prompt · messages  (question)", "chosen · the better answer  (good)"} <= titles
    editor.add_button.click()  # a turn answering the user's: the assistant's, then the user's again
    editor.add_button.click()
    assert [card.role() for card in editor.cards] == ["user", "assistant", "user"]
    editor.cards[1].content.edit.setPlainText("Hello! What can I do?")
    editor.cards[2].content.edit.setPlainText("Tell me a joke.")
    editor.commit()
    assert emitted[-1] == {
        "id": 3,
        "question": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! What can I do?"},
            {"role": "user", "content": "Tell me a joke."},
        ],
        "good": "Hello.",
        "bad": "Bye.",
    }


def test_rated_replies_toggle_good_and_bad_and_save_a_json_bool(open_rows, qtbot):
    page, data = open_rows(RATED)
    document = page.document
    assert page.table_model.headers == ["Row", "Prompt", "Completion", "Label", "Tokens", "Problem"]
    assert cells(page, 3) == ["good", "bad", "yes"]
    assert cells(page, 5) == ["", "", "wrong type"]
    label = page.table_model.index(0, 3)
    assert not page.table_model.flags(label) & page.table_model.flags(label).ItemIsEditable

    page.view.select_id(0)
    toggle = page.editor.fields["label"]
    assert toggle.good.isChecked() and not toggle.bad.isChecked() and not toggle.warning.isVisibleTo(page)
    with qtbot.waitSignal(document.rows_changed, timeout=5000):
        toggle.bad.click()  # a click is a whole edit: no typing pause to wait for
    assert document.store.record(0)["label"] is False and cells(page, 3)[0] == "bad"
    page.toolbar.undo_action.trigger()
    assert document.store.record(0)["label"] is True and page.editor.fields["label"].good.isChecked()
    page.toolbar.redo_action.trigger()

    page.view.select_id(2)  # a label that is not a bool: neither button, and a warning saying so
    toggle = page.editor.fields["label"]
    assert not toggle.good.isChecked() and not toggle.bad.isChecked()
    assert toggle.warning.isVisibleTo(page) and "not true/false" in toggle.warning.text()
    assert page.editor.commit() is False  # showing it does not rewrite it
    with qtbot.waitSignal(document.rows_changed, timeout=5000):
        toggle.good.click()
    assert document.issue_counts() == {}

    page.add_action.trigger()
    assert page.editor.fields["label"].good.isChecked()  # blank_record: a good answer to fill in
    assert page.files.save()
    qtbot.waitUntil(lambda: not document.is_dirty(), timeout=10000)
    expected = [
        {**RATED[0], "label": False},
        RATED[1],
        {**RATED[2], "label": True},
        {"prompt": "", "completion": "", "label": True},
    ]
    assert data.read_text() == "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in expected)
    assert '"label": false' in data.read_text().splitlines()[0]


def trained_chars(rendered) -> set[int]:
    from engine.data.rendering import IGNORE_INDEX

    return {
        c
        for (a, b), label in zip(rendered.offsets, rendered.labels, strict=False)
        if label != IGNORE_INDEX
        for c in range(a, b)
    }


@pytest.mark.slow  # tokenizes in an engine process
def test_a_pair_shows_side_by_side_with_each_sides_trained_tokens(open_rows, qtbot, tiny_model_dir):
    from engine.data.preference import render_sides

    page, _data = open_rows(PAIRS, model=str(tiny_model_dir))
    page.side.setCurrentWidget(page.trained)
    qtbot.waitUntil(lambda: page.base_model.tokenizer is not None and not page.reviewing(), timeout=60000)
    model = page.base_model
    for row_id in (0, 1):
        page.view.select_id(row_id)
        qtbot.waitUntil(lambda: page.trained.sides is not None and page.trained.sides.isVisible())
        sides = render_sides(model.tokenizer, page.document.store.record(row_id), model.max_length)
        views = page.trained.sides.views
        titles = [t.text() for t in page.trained.sides.titles]
        assert "chosen" in titles[0] and "rejected" in titles[1]
        assert views[1].mapTo(page.trained, QPoint(0, 0)).x() > views[0].mapTo(page.trained, QPoint(0, 0)).x()
        for (side, rendered), view in zip(sides, views, strict=True):
            assert view.body.toPlainText() == rendered.text.replace("\r", "↵")
            shown = {c for a, b in view.trained_char_ranges() for c in range(a, b)}
            assert shown == trained_chars(rendered) and shown, side
            answer = page.document.store.record(row_id)[side]
            start = rendered.text.rindex(answer)  # the answer is trained, the prompt is not
            assert set(range(start, start + len(answer))) <= shown
            assert not shown & set(range(rendered.text.index("Capital" if row_id == 0 else "Two")))
    # Token lengths are those of the longer side; a pair the trainer skips says why.
    lengths = page.document.review.lengths
    assert lengths[0] == max(len(r.input_ids) for _s, r in render_sides(model.tokenizer, PAIRS[0], 4096))
    page.view.select_id(2)
    qtbot.waitUntil(lambda: "not trained" in page.trained.message.text(), timeout=5000)
    assert "same answer" in page.trained.message.text()


@pytest.mark.slow  # tokenizes in an engine process
def test_a_rated_reply_shows_its_one_side(open_rows, qtbot, tiny_model_dir):
    from engine.data.preference import render_sides

    page, _data = open_rows(RATED, model=str(tiny_model_dir))
    page.side.setCurrentWidget(page.trained)
    qtbot.waitUntil(lambda: page.base_model.tokenizer is not None and not page.reviewing(), timeout=60000)
    page.view.select_id(1)
    qtbot.waitUntil(lambda: page.trained.sides is not None and page.trained.sides.isVisible(), timeout=5000)
    [(side, rendered)] = render_sides(page.base_model.tokenizer, RATED[1], page.base_model.max_length)
    view = page.trained.sides.views[0]
    assert side == "bad" and "bad" in page.trained.sides.titles[0].text()
    assert not page.trained.sides.views[1:] or not page.trained.sides.views[1].isVisibleTo(page)
    assert {c for a, b in view.trained_char_ranges() for c in range(a, b)} == trained_chars(rendered)
