"""Preference rows from the chat: "Left/Right is better" in compare mode, thumbs up/down in single mode.

The transcripts are filled directly (no model): what is tested is the row each verdict writes.
"""

from __future__ import annotations

import json

import pytest

from engine.data.edit_journal import read_pending

QUESTION = "What is the capital of France?"
LEFT, RIGHT = "Paris.", "Lyon, I think."
CHAT_ROW = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}


def exchange(question: str, reply: str) -> list[dict]:
    return [
        {"role": "user", "content": question},
        {"role": "assistant", "content": reply, "stats": {"new_tokens": 3, "stop_reason": "end_of_turn"}},
    ]


def make_project(home, dataset_rows=None):
    """A project whose training data is a chat dataset (or `dataset_rows`, e.g. preference pairs)."""
    from engine.workspace import Workspace

    source = home.parent / "train.jsonl"
    rows = [CHAT_ROW] if dataset_rows is None else dataset_rows
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    workspace = Workspace(home)
    project = workspace.create_project("Picking", dataset=source)
    return workspace, project


@pytest.fixture
def picking(qtbot, home):
    """(chat page, data page, project folder): the chat's rows go to the Data tab as in the main window."""
    from app.chat.page import ChatPage
    from app.data.page import DataPage

    made = []

    def make(dataset_rows=None, open_data=False):
        workspace, project = make_project(home, dataset_rows)
        summary = workspace.summarize(project)
        page = ChatPage()
        qtbot.addWidget(page)
        page.resize(1300, 800)
        page.show()
        page.show_project(summary)
        data_page = DataPage()
        qtbot.addWidget(data_page)
        if open_data:
            data_page.resize(1200, 800)
            data_page.show()  # the Data tab opens its dataset once shown
            data_page.show_project(summary)
            qtbot.waitUntil(
                lambda: data_page.document is not None and not data_page.reviewing(), timeout=30000
            )
        page.recordForDataset.connect(data_page.add_record)
        page.dialogs = []
        made.append((page, data_page))
        return page, data_page, project

    yield make
    for page, data_page in made:
        page.shutdown()
        data_page.shutdown()


def answer_with(page, act=lambda dialog: None, add=True) -> None:
    """The user's answer to the next pick dialog: `act` on it (pick a dataset, edit), then Add or Cancel."""

    def run(dialog):
        page.dialogs.append(dialog)
        act(dialog)
        return add

    page.picks.run_dialog = run


def compare(page, left=LEFT, right=RIGHT, question=QUESTION) -> None:
    page.compare.setChecked(True)
    page.sides[0].transcript.set_messages(exchange(question, left))
    page.sides[1].transcript.set_messages(exchange(question, right))
    page._update_state()


def verdict_bar(page, side: int, index: int = 1):
    return page.sides[side].transcript._views[index].verdicts


def pick(qtbot, data_page, button) -> None:
    with qtbot.waitSignal(data_page.status, timeout=20000):
        button.click()


def test_left_or_right_is_better_writes_the_exact_pair_and_edit_corrects_the_chosen(picking, qtbot):
    page, data_page, project = picking()
    compare(page)
    left, right = verdict_bar(page, 0), verdict_bar(page, 1)
    assert left.better.isVisible() and left.better.text() == "Left is better"
    assert right.better.isVisible() and right.better.text() == "Right is better"
    assert not left.good.isVisible() and not verdict_bar(page, 0, 0).isVisible()  # not on the prompt

    answer_with(page)
    pick(qtbot, data_page, left.better)
    target = project / "datasets" / "preference-pairs.jsonl"
    first = {"prompt": QUESTION, "chosen": LEFT, "rejected": RIGHT}
    assert target.read_text() == json.dumps(first) + "\n"
    dialog = page.dialogs[-1]  # it offered the new dataset (the chat dataset holds conversations)
    assert dialog.chosen() == target and dialog.target.currentText() == "preference-pairs.jsonl (new)"
    assert dialog.preview.toPlainText() == json.dumps(first, indent=2)  # the row shown is the row written
    assert (
        left.kept.isVisible()
        and left.kept.text() == "\u2713 Kept as the chosen reply in preference-pairs.jsonl"
    )
    assert right.kept.text() == "\u2713 Kept as the rejected reply in preference-pairs.jsonl"
    assert left.better.isVisible()  # still there: a pair can be kept the other way round on purpose

    pick(qtbot, data_page, right.better)  # the right side chosen: chosen and rejected swap
    assert page.dialogs[-1].note.startswith(
        "Kept as the rejected reply in preference-pairs.jsonl already: Add writes a second row."
    )
    second = {"prompt": QUESTION, "chosen": RIGHT, "rejected": LEFT}
    assert target.read_text() == json.dumps(first) + "\n" + json.dumps(second) + "\n"

    def edit(dialog):
        assert dialog.reply.isReadOnly()
        dialog.edit_button.click()
        dialog.reply.setPlainText("Paris is the capital of France.")

    answer_with(page, edit)
    pick(qtbot, data_page, left.better)
    third = {"prompt": QUESTION, "chosen": "Paris is the capital of France.", "rejected": RIGHT}
    assert target.read_text().splitlines()[2] == json.dumps(third)
    assert json.loads(page.dialogs[-1].preview.toPlainText()) == third
    assert page.sides[0].transcript.messages()[1]["content"] == LEFT  # the chat keeps what the model said


def test_a_longer_chat_with_a_system_prompt_gives_the_messages_up_to_the_last_user_turn(picking, qtbot):
    page, data_page, project = picking()
    page.sampling.set_system_prompt("Be brief.")
    page.compare.setChecked(True)
    page.sides[0].transcript.set_messages(exchange("Hi", "Hello.") + exchange("Capital?", "Paris."))
    page.sides[1].transcript.set_messages(exchange("Hi", "Hello.") + exchange("Capital?", "Rome."))
    page._update_state()
    answer_with(page)
    pick(qtbot, data_page, verdict_bar(page, 1, 3).better)
    row = json.loads((project / "datasets" / "preference-pairs.jsonl").read_text())
    assert row == {
        "prompt": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Capital?"},
        ],
        "chosen": "Rome.",
        "rejected": "Paris.",
    }
    assert page.dialogs[-1].note.startswith("Preference pairs train DPO")  # nothing about differing turns

    # Earlier replies that differ: the prompt is the better side's conversation, and the dialog says so.
    page.sides[1].transcript.set_messages(exchange("Hi", "Hey there.") + exchange("Capital?", "Rome."))
    page._update_state()
    pick(qtbot, data_page, verdict_bar(page, 1, 3).better)
    row = json.loads((project / "datasets" / "preference-pairs.jsonl").read_text().splitlines()[1])
    assert row["prompt"][2] == {"role": "assistant", "content": "Hey there."} and row["rejected"] == "Paris."
    assert page.dialogs[-1].note.startswith("The two sides' earlier turns differ")


def test_thumbs_up_and_down_write_the_exact_kto_rows(picking, qtbot):
    page, data_page, project = picking()
    page.sides[0].transcript.set_messages(exchange(QUESTION, LEFT) + exchange("And Italy's?", "Rome."))
    page._update_state()
    first, second = verdict_bar(page, 0, 1), verdict_bar(page, 0, 3)
    assert first.good.isVisible() and first.bad.isVisible() and not first.better.isVisible()
    answer_with(page)
    pick(qtbot, data_page, first.good)
    pick(qtbot, data_page, second.bad)
    target = project / "datasets" / "rated-replies.jsonl"
    assert target.read_text() == (
        json.dumps({"prompt": QUESTION, "completion": LEFT, "label": True})
        + "\n"
        + json.dumps(
            {
                "prompt": [
                    {"role": "user", "content": QUESTION},
                    {"role": "assistant", "content": LEFT},
                    {"role": "user", "content": "And Italy's?"},
                ],
                "completion": "Rome.",
                "label": False,
            }
        )
        + "\n"
    )
    assert page.dialogs[-1].windowTitle() == "Keep a bad reply"


def test_a_kept_reply_says_so_after_the_chat_is_reopened_and_no_more_once_corrected(picking, qtbot):
    from engine.chat.store import list_conversations, load_conversation

    page, data_page, project = picking()
    page.sides[0].transcript.set_messages(exchange(QUESTION, LEFT))
    page._update_state()
    answer_with(page)
    pick(qtbot, data_page, verdict_bar(page, 0).good)
    bar = verdict_bar(page, 0)
    assert bar.kept.text() == "\u2713 Kept as a good reply in rated-replies.jsonl" and bar.good.isVisible()

    (summary,) = list_conversations(project)  # the mark is saved with the chat
    page.sides[0].transcript.set_messages(load_conversation(project, summary.id).messages)
    page._update_state()
    assert verdict_bar(page, 0).kept.text() == "\u2713 Kept as a good reply in rated-replies.jsonl"
    page.compare.setChecked(True)  # a rated reply is not a kept pair
    page.sides[1].transcript.set_messages(exchange(QUESTION, RIGHT))
    page._update_state()
    assert verdict_bar(page, 0).better.isVisible() and verdict_bar(page, 0).kept.isHidden()
    page.compare.setChecked(False)
    page._update_state()

    view = page.sides[0].transcript._views[1]  # corrected: what was kept is no longer this reply
    view.edit_button.click()
    view.editor.setPlainText("Paris, on the Seine.")
    view.save_button.click()
    assert verdict_bar(page, 0).kept.isHidden() and verdict_bar(page, 0).good.isVisible()
    assert "kept" not in page.sides[0].transcript.messages()[1]


def test_a_dataset_of_another_shape_shows_the_message_and_nothing_is_written(picking, qtbot):
    page, data_page, project = picking()
    compare(page)
    chat_data = project / "datasets" / "train.jsonl"
    before = chat_data.read_text()
    failures = []
    page.failed.connect(lambda message, hint: failures.append(message))

    def choose_chat_data(dialog):
        dialog.target.setCurrentIndex(dialog.target.findText("train.jsonl"))
        assert dialog.problem.text().startswith("This dataset holds messages rows, not preference pairs.")
        assert dialog.problem.text().endswith('Choose "preference-pairs.jsonl (new)" to start one.')
        assert not dialog.add_button.isEnabled() and dialog.preview.toPlainText() == ""
        dialog.target.setCurrentIndex(dialog.target.findText("preference-pairs.jsonl (new)"))
        assert dialog.add_button.isEnabled() and dialog.problem.isHidden()  # the way out: a new dataset
        dialog.target.setCurrentIndex(dialog.target.findText("train.jsonl"))

    answer_with(page, choose_chat_data)  # even if it were added anyway, nothing is written
    verdict_bar(page, 0).better.click()
    assert failures == ["This dataset holds messages rows, not preference pairs."]
    assert chat_data.read_text() == before
    assert not (project / "datasets" / "preference-pairs.jsonl").exists()
    assert verdict_bar(page, 0).kept.isHidden() and "kept" not in page.sides[0].transcript.messages()[1]


def test_the_same_reply_on_both_sides_or_an_error_gives_no_pair(picking, qtbot):
    page, data_page, project = picking()
    compare(page, left="Paris.", right="Paris.")

    def same(dialog):
        assert "chosen and rejected are the same answer" in dialog.problem.text()
        assert not dialog.add_button.isEnabled()

    answer_with(page, same, add=False)
    verdict_bar(page, 0).better.click()
    assert page.dialogs and not (project / "datasets" / "preference-pairs.jsonl").exists()

    page.sides[1].transcript.set_messages(
        [
            exchange(QUESTION, "")[0],
            {"role": "assistant", "content": "*No reply*", "stats": {"stop_reason": "error"}},
        ]
    )
    page._update_state()
    assert not verdict_bar(page, 0).isVisible() and not verdict_bar(page, 1).isVisible()


def test_a_pair_for_the_dataset_open_in_the_data_tab_goes_through_its_undo_and_journal(picking, qtbot):
    old = {"prompt": "Two plus two?", "chosen": "Four.", "rejected": "Five."}
    page, data_page, project = picking(dataset_rows=[old], open_data=True)
    compare(page)
    data = project / "datasets" / "train.jsonl"

    def keep_in_open_dataset(dialog):
        assert dialog.chosen() == data  # the dataset that fits is offered first

    answer_with(page, keep_in_open_dataset)
    pick(qtbot, data_page, verdict_bar(page, 1).better)
    document = data_page.document
    assert document.store.record(int(document.store.order[-1])) == {
        "prompt": QUESTION,
        "chosen": RIGHT,
        "rejected": LEFT,
    }
    assert data.read_text() == json.dumps(old) + "\n"  # in the editor, journalled, not yet saved
    assert read_pending(data).ops[-1]["op"] == "insert"
    assert document.undo.undoText() == "Add preference pair from chat"
    document.undo.undo()
    assert len(document.store) == 1


def test_dataset_shape_reads_the_columns_of_every_data_file_kind(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from app.chat.preference_picks import dataset_shape
    from engine.errors import DataError

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{broken\n\n{"prompt": "q", "chosen": "a", "rejected": "b"}\n')
    assert dataset_shape(pairs).name == "preference"
    rated = tmp_path / "rated.parquet"
    pq.write_table(pa.table({"prompt": ["q"], "completion": ["a"], "label": [True]}), rated)
    assert dataset_shape(rated).name == "kto"
    csv_pairs = tmp_path / "pairs.csv"  # a CSV preference dataset is offered, not replaced by a new JSONL
    csv_pairs.write_text('prompt,chosen,rejected\n"q, with a comma",a,b\n')
    assert dataset_shape(csv_pairs).name == "preference"
    tsv_rated = tmp_path / "rated.tsv"
    tsv_rated.write_text("prompt\tcompletion\tlabel\nq\ta\ttrue\n")
    assert dataset_shape(tsv_rated).name == "kto"
    json_pairs = tmp_path / "pairs.json"
    json_pairs.write_text('[{"prompt": "q", "chosen": "a", "rejected": "b"}]')
    assert dataset_shape(json_pairs).name == "preference"
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"question": "q"}\n')
    with pytest.raises(DataError, match=r"^odd.jsonl: Cannot tell the data's shape"):
        dataset_shape(odd)
