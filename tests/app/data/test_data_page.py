"""The Data tab end to end: open, edit, undo/redo, save, recover after a kill, problems, filters,
close guard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from engine.data.edit_journal import journal_path, read_pending
from engine.data.project_files import original_path

REPO = str(Path(__file__).resolve().parents[3])


def chat(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


ROWS = [
    chat("What is the capital of France?", "Paris."),
    chat("Two plus two?", "Four."),
    chat("Colour of the sky?", "Blue."),
]


def make_project(home, rows=ROWS, extra_lines=(), model=None):
    from engine.workspace import Workspace

    source = home.parent / "source.jsonl"
    source.write_text(
        "".join(json.dumps(r) + "\n" for r in rows) + "".join(line + "\n" for line in extra_lines)
    )
    workspace = Workspace(home)
    path = workspace.create_project("Data test", model=model, dataset=source)
    return workspace, path, path / "datasets" / "source.jsonl"


@pytest.fixture
def open_page(qtbot, home):
    """A shown Data page on a fresh project; returns (page, data file)."""
    from app.data.page import DataPage

    pages = []

    def make(rows=ROWS, extra_lines=(), model=None, recover=True):
        workspace, project, data = make_project(home, rows, extra_lines, model)
        page = DataPage()
        page.ask_recover = lambda name, what: recover
        page.answers = []
        page.ask_unsaved = lambda name, can_cancel: page.answers.pop(0)
        qtbot.addWidget(page)
        page.resize(1200, 800)
        page.show()
        page.show_project(workspace.summarize(project))
        # With a model the review's child process imports transformers: tens of seconds on a loaded machine.
        qtbot.waitUntil(lambda: page.document is not None and not page.reviewing(), timeout=90000)
        pages.append(page)
        return page, data

    yield make
    for page in pages:
        page.shutdown()


def file_rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def edit_current(page, qtbot, text: str) -> None:
    """Type into the reply of the selected row the way a person does, and wait for the edit."""
    card = page.editor.cards[-1]
    card.content.edit.selectAll()
    with qtbot.waitSignal(page.document.rows_changed, timeout=5000):
        qtbot.keyClicks(card.content.edit, text)
        page.editor.commit()


def test_edit_undo_redo_save_round_trip(open_page, qtbot):
    page, data = open_page()
    before = data.read_bytes()
    page.view.select_id(1)
    edit_current(page, qtbot, "4")
    document = page.document
    assert document.is_dirty() and document.store.record(1)["messages"][1]["content"] == "4"
    assert page.table_model.data(page.table_model.index(1, 3)) == "4"
    assert read_pending(data).ops[-1]["records"][0]["messages"][1]["content"] == "4"  # journaled at once

    assert page.toolbar.undo_action.isEnabled() and "Edit row 2" in page.toolbar.undo_action.toolTip()
    page.toolbar.undo_action.trigger()
    assert document.store.record(1) == ROWS[1] and not document.is_dirty()
    assert not page.toolbar.undo_action.isEnabled() and page.toolbar.redo_action.isEnabled()
    assert page.editor.record() == ROWS[1]  # the editor follows undo
    document.undo.redo()
    assert document.store.record(1)["messages"][1]["content"] == "4"

    model = page.table_model  # a one-line cell is edited in place, as one undo step
    assert model.flags(model.index(2, 2)) & Qt.ItemFlag.ItemIsEditable
    page.view.table.edit(model.index(2, 2))  # the delegate opens a line editor on a one-line cell
    assert page.view.table.state() == page.view.table.State.EditingState
    page.view.table.closePersistentEditor(model.index(2, 2))
    assert model.setData(model.index(2, 2), "Colour of the sea?")
    assert document.store.record(2) == chat("Colour of the sea?", "Blue.") and document.undo.count() == 2
    document.undo.undo()
    assert document.store.record(2) == ROWS[2]

    page.delete_action.trigger()  # deletes the selected row 2 (position 1)
    assert len(document.store) == 2
    page.view.select_id(0)
    page.duplicate_action.trigger()
    assert len(document.store) == 3

    assert page.files.save()
    qtbot.waitUntil(lambda: not document.is_dirty(), timeout=10000)
    assert file_rows(data) == [ROWS[0], ROWS[0], ROWS[2]]
    assert original_path(data).read_bytes() == before  # the file as imported is kept
    assert read_pending(data) is None  # nothing left to recover
    document.undo.undo()  # undo after a save still works, and makes the document dirty again
    assert document.is_dirty() and len(document.store) == 2


CRASHING_EDITOR = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
    from app.data.document import DatasetDocument
    document = DatasetDocument.open(Path(sys.argv[1]))
    document.start_journal()
    row = document.store.record(0)
    row["messages"][1]["content"] = "Paris, the capital."
    document.set_records([0], [row], "edit")
    document.delete_rows([2], "delete")
    document.insert_records([0], [{"messages": [{"role": "user", "content": "New?"},
                                                {"role": "assistant", "content": "Yes."}]}], "add")
    document.undo.undo()  # the add is taken back: recovery must not bring it back
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_recovery_after_the_editor_is_killed(open_page, qtbot, home):
    _workspace, _project, data = make_project(home)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": REPO}
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_EDITOR, str(data)], env=env, capture_output=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    assert file_rows(data) == ROWS  # the kill saved nothing

    from app.data.page import DataPage
    from engine.workspace import Workspace

    page = DataPage()
    asked = []
    page.ask_recover = lambda name, what: asked.append(what) or True
    qtbot.addWidget(page)
    page.show()
    page.show_project(Workspace(home).summarize(data.parent.parent))
    qtbot.waitUntil(lambda: page.document is not None, timeout=15000)
    assert asked and asked[0].startswith("4 unsaved edits")
    rows = [r for _i, r in page.document.store.iter_records()]
    assert rows == [chat("What is the capital of France?", "Paris, the capital."), ROWS[1]]
    assert page.document.is_dirty()
    page.files.save()
    qtbot.waitUntil(lambda: not page.document.is_dirty(), timeout=10000)
    assert file_rows(data) == rows
    page.shutdown()


def test_problems_select_their_row_and_fixes_undo(open_page, qtbot):
    rows = [chat("q1", " padded "), chat("q2", "fine"), chat("q2", "fine"), chat("q3", "")]
    page, data = open_page(rows, extra_lines=["{not json"])
    counts = page.document.issue_counts()
    assert counts == {"surrounding_whitespace": 1, "duplicate": 1, "empty_assistant": 1, "invalid_json": 1}
    entries = page.problems.model.entries
    broken = next(i for i, e in enumerate(entries) if e[2] == "invalid_json")
    page.problems.table.clicked.emit(page.problems.model.index(broken, 0))
    assert page.view.current_id() == 4 and page.editor.tabs.currentIndex() == 1  # raw JSON for a broken line

    page.problems._on_fix("duplicate")
    assert len(page.document.store) == 4 and "duplicate" not in page.document.issue_counts()
    page.problems._on_fix("surrounding_whitespace")
    assert page.document.store.record(0) == chat("q1", "padded")
    page.problems._on_fix("empty_assistant")
    page.problems._on_fix("invalid_json")
    assert [r for _i, r in page.document.store.iter_records()] == [chat("q1", "padded"), chat("q2", "fine")]
    assert not page.document.issue_entries()
    for _ in range(4):
        page.document.undo.undo()
    assert [r for _i, r in page.document.store.iter_records()][:4] == rows
    assert data.read_text().count("\n") == 5  # nothing written until Save


def test_find_and_problem_filters(open_page, qtbot):
    rows = [chat(f"question {i}", "answer" if i % 3 else "") for i in range(12)]
    page, _data = open_page(rows)
    page.toolbar.find.setText("question 1")
    qtbot.waitUntil(lambda: page.table_model.rowCount() == 3, timeout=5000)  # 1, 10, 11
    assert [page.table_model.id_at(r) for r in range(3)] == [1, 10, 11]
    page.toolbar.find.clear()
    page.toolbar.problem.setCurrentIndex(page.toolbar.problem.findData("empty_assistant"))
    assert [page.table_model.id_at(r) for r in range(page.table_model.rowCount())] == [0, 3, 6, 9]
    page.select_row(1)  # a hidden row chosen from the problems panel clears the filter
    assert page.table_model.rowCount() == 12 and page.view.current_id() == 1


@pytest.mark.slow  # tokenizes in an engine process
def test_what_gets_trained_is_the_trainers_label_mask(open_page, qtbot, tiny_model_dir, tmp_path):
    from engine.config import DataConfig
    from engine.data.prepare import prepare_data
    from engine.data.rendering import IGNORE_INDEX, render_row

    page, data = open_page(model=str(tiny_model_dir))
    page.side.setCurrentWidget(page.trained)  # the view that loads the tokenizer in the app
    qtbot.waitUntil(
        lambda: (
            page.base_model.tokenizer is not None
            and not page.reviewing()
            and len(page.document.review.lengths) > 0
        ),
        timeout=30000,
    )
    page.view.select_id(2)
    qtbot.waitUntil(lambda: page.trained.trained_char_ranges() != [], timeout=5000)
    single = tmp_path / "one.jsonl"
    single.write_text(json.dumps(ROWS[2]) + "\n")
    model = page.base_model
    labels = prepare_data(model.tokenizer, DataConfig(path=str(single), max_length=model.max_length)).train[
        0
    ]["labels"]
    offsets = render_row(page.base_model.tokenizer, ROWS[2]["messages"], page.base_model.max_length).offsets
    trained = {
        c
        for (a, b), label in zip(offsets, labels, strict=False)
        if label != IGNORE_INDEX
        for c in range(a, b)
    }
    shown = {c for a, b in page.trained.trained_char_ranges() for c in range(a, b)}
    assert shown == trained and shown
    # Token lengths feed the table, the sort and the histogram.
    page.toolbar.sort.setCurrentIndex(page.toolbar.sort.findData("longest"))
    lengths = [int(page.table_model.data(page.table_model.index(r, 4))) for r in range(3)]
    assert lengths == sorted(lengths, reverse=True)
    assert page.checks.histogram is not None and "3 rows" in page.checks.histogram.summary_text()


def edited_in_window(make_window, home, qtbot):
    """A main window on a fresh project with its dataset open in the Data tab and row 0 edited."""
    _workspace, project, data = make_project(home)
    window = make_window()
    window.browser.select_project(project)
    window.pages.setCurrentIndex(0)
    page = window.data_page
    qtbot.waitUntil(lambda: page.document is not None, timeout=15000)
    page.view.select_id(0)
    edit_current(page, qtbot, "Lyon?")
    return window, page, data


def test_close_guard_and_discard(make_window, home, dialogs, qtbot):
    window, page, data = edited_in_window(make_window, home, qtbot)
    page.ask_unsaved = lambda name, can_cancel: "cancel"
    assert not window.close()
    assert window.isVisible() and page.document.is_dirty()
    page.ask_unsaved = lambda name, can_cancel: "discard"
    assert window.close()
    assert file_rows(data) == ROWS and not journal_path(data).exists()


def test_import_and_export(open_page, qtbot, tmp_path):
    import pyarrow.parquet as pq

    page, data = open_page()
    source = tmp_path / "extra.csv"
    source.write_text("prompt,completion\nhello,world\nbye,now\n")
    page.files.choose_import_file = lambda: str(source)
    page.files.import_file()
    qtbot.waitUntil(
        lambda: page.document is not None and page.document.path.name == "extra.csv", timeout=15000
    )
    assert source.read_text().startswith("prompt,completion")  # the user's file is untouched
    assert page.document.shape.name == "prompt_completion" and len(page.document.store) == 2
    page.view.select_id(0)
    page.editor.fields["completion"].edit.setPlainText("there")
    page.editor.commit()
    page.files.save()
    saved = data.parent / "extra.jsonl"
    qtbot.waitUntil(lambda: saved.exists() and not page.document.is_dirty(), timeout=10000)
    assert page.document.path == saved and file_rows(saved)[0] == {"prompt": "hello", "completion": "there"}
    target = tmp_path / "out.parquet"
    page.files.choose_export_file = lambda suggested: str(target)
    page.files.export_file()
    qtbot.waitUntil(lambda: target.exists(), timeout=10000)
    assert pq.read_table(target).to_pylist() == [
        {"prompt": "hello", "completion": "there"},
        {"prompt": "bye", "completion": "now"},
    ]


def test_unreadable_dataset_says_why(qtbot, home):
    from app.data.page import DataPage
    from engine.workspace import Workspace

    _workspace, project, data = make_project(home)
    data.write_text("")  # emptied behind our back
    page = DataPage()
    qtbot.addWidget(page)
    page.show()
    page.show_project(Workspace(home).summarize(project))
    qtbot.waitUntil(lambda: "empty" in page.view.message.text(), timeout=15000)
    assert page.document is None and page.view.currentWidget() is page.view.message
    assert Qt.AlignmentFlag.AlignCenter & page.view.message.alignment()


def test_starting_a_run_offers_to_save_the_edits_it_would_miss(open_page, qtbot, tmp_path):
    page, data = open_page()
    page.view.select_id(0)
    edit_current(page, qtbot, "Lyon?")
    assert page.ready_for_training(tmp_path / "other.jsonl")  # another file: nothing to ask
    page.files.ask_save_before_training = lambda name: "cancel"
    assert not page.ready_for_training(data) and file_rows(data) == ROWS
    page.files.ask_save_before_training = lambda name: "save"
    assert page.ready_for_training(data)
    assert (
        file_rows(data)[0] == chat("What is the capital of France?", "Lyon?") and not page.document.is_dirty()
    )


@pytest.mark.slow  # a big review in a child process
def test_a_big_dataset_is_reviewed_in_a_child_process_with_the_same_result(
    open_page, qtbot, monkeypatch, tiny_model_dir
):
    from app.data.review import ReviewRunner

    rows = [chat(f"q{i}", " padded " if i == 1 else ("" if i == 2 else f"a{i}")) for i in range(6)] + [
        chat("q0", "a0")
    ]
    page, _data = open_page(rows, extra_lines=["{broken"], model=str(tiny_model_dir))
    page.side.setCurrentWidget(page.trained)
    qtbot.waitUntil(lambda: page.base_model.tokenizer is not None and not page.reviewing(), timeout=30000)
    page.view.select_id(3)
    edit_current(page, qtbot, "edited  ")  # an unsaved edit the child must see
    page.document.delete_rows([4], "delete")
    page.checks.start_review()
    qtbot.waitUntil(lambda: not page.reviewing(), timeout=30000)
    in_thread = (page.document.issue_counts(), page.document.review.lengths.copy())
    monkeypatch.setattr(ReviewRunner, "rows_in_process", 0)
    page.checks.start_review()
    assert page.checks.reviewer._process is not None
    qtbot.waitUntil(lambda: not page.reviewing(), timeout=60000)
    assert page.document.issue_counts() == in_thread[0]
    assert in_thread[0]["surrounding_whitespace"] == 2 and in_thread[0]["invalid_json"] == 1
    assert (page.document.review.lengths == in_thread[1]).all() and (in_thread[1][[0, 1, 3]] > 0).all()
    assert in_thread[1][2] == -1  # an empty reply is not rendered


def test_a_chat_row_for_the_open_dataset_goes_through_its_undo_stack(open_page, qtbot):
    page, data = open_page()
    messages = [{"role": "user", "content": "New question?"}, {"role": "assistant", "content": "New answer."}]
    page.add_chat_row(data, messages)
    document = page.document
    assert len(document.store) == 4 and document.store.record(int(document.store.order[-1])) == {
        "messages": messages
    }
    assert document.is_dirty() and file_rows(data) == ROWS  # in the editor, journaled, not yet saved
    assert read_pending(data).ops[-1]["op"] == "insert"
    document.undo.undo()
    assert len(document.store) == 3


def test_the_train_tab_asks_the_data_tab_before_a_run_on_an_edited_file(make_window, home, qtbot, tmp_path):
    from app.train.page import StartRequest

    window, page, data = edited_in_window(make_window, home, qtbot)
    page.files.ask_save_before_training = lambda name: "cancel"
    other, same = StartRequest(tmp_path / "other.jsonl"), StartRequest(data)
    window.train_page.aboutToStart.emit(other)
    window.train_page.aboutToStart.emit(same)
    assert not other.refused and same.refused and file_rows(data) == ROWS
    page.ask_unsaved = lambda name, can_cancel: "discard"  # closing the window must not ask
