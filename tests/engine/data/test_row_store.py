"""The dataset editor's engine side: the row store, its journal, search, review, fixes and project files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.data.edit_journal import EditJournal, journal_path, read_pending
from engine.data.project_files import import_dataset, keep_original, original_path, save_target
from engine.data.review import check_row, review_store, trimmed
from engine.data.row_search import matching_rows
from engine.data.row_store import BROKEN, open_store, save_store
from engine.data.shapes import blank_record
from engine.errors import DataError


def chat(q: str, a: str) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def write_lines(path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def clean_file(tmp_path):
    path = tmp_path / "clean.jsonl"
    write_lines(path, [json.dumps(chat(f"question {i}", f"answer {i}")) for i in range(10)])
    return path


@pytest.fixture
def broken_file(tmp_path):
    path = tmp_path / "broken.jsonl"
    write_lines(path, [json.dumps(chat("a", "b")), "{not json", "", json.dumps(chat("c", "d")), "[1, 2]"])
    return path


def contents(store) -> list[dict]:
    return [record for _i, record in store.iter_records()]


def test_clean_file_opens_as_arrow_without_row_objects(clean_file):
    store, shape = open_store(clean_file)
    assert shape.name == "messages" and len(store) == 10
    assert store.table.column_names == ["messages"]  # real columns, not JSON text
    assert not store._cache  # nothing decoded up front
    assert store.record(3) == chat("question 3", "answer 3")
    assert store.line_of(3) == 4


def test_broken_lines_stay_rows_and_survive_a_save(broken_file, tmp_path):
    store, shape = open_store(broken_file)
    assert shape.name == "messages"
    records = contents(store)
    assert records[1] == {BROKEN: "{not json"} and records[3] == {BROKEN: "[1, 2]"}
    assert [store.line_of(i) for i in store.order] == [1, 2, 4, 5]
    out = tmp_path / "saved.jsonl"
    save_store(store, out)
    assert out.read_text().splitlines() == [
        json.dumps(chat("a", "b")),
        "{not json",
        json.dumps(chat("c", "d")),
        "[1, 2]",
    ]
    with pytest.raises(DataError, match="not valid JSON"):
        save_store(store, tmp_path / "saved.parquet")


def test_edits_by_position_and_undo_by_ids(clean_file, tmp_path):
    store, _shape = open_store(clean_file)
    store.set_record(0, chat("edited", "yes"))
    store.insert([2, 4], [chat("new 1", "x"), chat("new 2", "y")])
    assert [r["messages"][0]["content"] for r in contents(store)][:6] == [
        "edited",
        "question 1",
        "new 1",
        "question 2",
        "new 2",
        "question 3",
    ]
    removed = store.delete([0, 2])
    assert len(store) == 10 and store.is_edited(removed[0])
    store.insert([0, 2], ids=removed)  # undo: the same rows come back, edits included
    assert contents(store)[0] == chat("edited", "yes") and contents(store)[2] == chat("new 1", "x")
    save_store(store, tmp_path / "out.parquet")
    reopened, _ = open_store(tmp_path / "out.parquet")
    assert contents(reopened) == contents(store)
    reopened.set_record(0, {"messages": "not a list"})  # types Parquet cannot put in one column
    with pytest.raises(DataError, match="one Parquet table"):
        save_store(reopened, tmp_path / "out.parquet")
    assert contents(open_store(tmp_path / "out.parquet")[0]) == contents(store)  # the old file is intact


def test_many_inserts_at_once_keep_order(clean_file):
    store, _shape = open_store(clean_file)
    positions = [2 * k for k in range(10)] + list(range(20, 110))  # 10 interleaved, 90 appended
    store.insert(positions, [chat(f"n{i}", "x") for i in range(100)])
    texts = [r["messages"][0]["content"] for r in contents(store)]
    assert texts[:4] == ["n0", "question 0", "n1", "question 1"] and len(texts) == 110
    assert texts[19:22] == ["question 9", "n10", "n11"] and texts[-1] == "n99"


def test_journal_replays_edits_on_the_file_they_were_made_on(clean_file):
    store, _shape = open_store(clean_file)
    journal = EditJournal(clean_file)
    journal.start()
    ops = [
        {"op": "set", "positions": [1], "records": [chat("fixed", "ok")]},
        {"op": "delete", "positions": [0, 5]},
        {"op": "insert", "positions": [0], "records": [chat("first", "row")]},
    ]
    for op in ops:
        journal.append(op)
        store.apply(op)
    # A kill mid-write leaves a torn last line: it is ignored, the complete edits are kept.
    with open(journal_path(clean_file), "ab") as handle:
        handle.write(b'{"op": "set", "positi')
    journal.close()
    pending = read_pending(clean_file)
    assert pending is not None and pending.matches_file and len(pending.ops) == 3
    replayed, _ = open_store(clean_file)
    for op in pending.ops:
        replayed.apply(op)
    assert contents(replayed) == contents(store)
    clean_file.write_text(clean_file.read_text() + json.dumps(chat("z", "z")) + "\n")
    assert not read_pending(clean_file).matches_file  # the file changed: never replayed on it
    EditJournal(clean_file).discard()
    assert read_pending(clean_file) is None


def test_search_matches_nested_text_and_edited_rows(clean_file):
    store, _shape = open_store(clean_file)
    store.set_record(7, chat("Needle in here", "x"))
    mask = matching_rows(store, "needle")
    assert np.flatnonzero(mask).tolist() == [7]
    assert matching_rows(store, "ANSWER 3")[3]
    assert not matching_rows(store, "ANSWER 3", case_sensitive=True)[3]


def test_review_finds_the_data_layers_problems(broken_file, tmp_path):
    path = tmp_path / "mixed.jsonl"
    write_lines(
        path,
        [
            json.dumps(chat("q", " spaced ")),
            json.dumps(chat("q", "")),
            json.dumps(chat("q", " spaced ")),
            json.dumps({"messages": [{"role": "wizard", "content": "x"}]}),
            "{oops",
        ],
    )
    store, shape = open_store(path)
    review = review_store(store, shape)
    kinds = {store.position(i): sorted(x.kind for x in issues) for i, issues in review.issues.items()}
    assert kinds == {
        0: ["surrounding_whitespace"],
        1: ["empty_assistant"],
        2: ["duplicate", "surrounding_whitespace"],
        3: ["unknown_role"],
        4: ["invalid_json"],
    }
    fixed = trimmed(store.record(0), shape)
    assert fixed == chat("q", "spaced") and check_row(fixed, shape)[1] == []


def test_review_with_tokenizer_measures_lengths_and_truncation(clean_file, tiny_model_dir):
    from engine.config import ModelConfig
    from engine.data.rendering import render_row
    from engine.models.loading import load_tokenizer

    tokenizer = load_tokenizer(ModelConfig(path=str(tiny_model_dir)))
    store, shape = open_store(clean_file)
    short = min(len(render_row(tokenizer, shape.normalise(store.record(0)), 4096).input_ids) - 2, 64)
    review = review_store(store, shape, tokenizer, max_length=short)
    expected = len(render_row(tokenizer, shape.normalise(store.record(4)), 4096).input_ids)
    assert review.lengths[4] == expected
    assert all(any(x.kind == "truncated" for x in review.issues[i]) for i in range(10))


def test_import_copies_and_first_save_keeps_the_original(tmp_path, clean_file):
    project = tmp_path / "project"
    first = import_dataset(project, clean_file)
    second = import_dataset(project, clean_file)
    assert first.name == "clean.jsonl" and second.name == "clean (2).jsonl"
    before = clean_file.read_bytes()
    assert keep_original(first) == original_path(first)
    first.write_text("changed\n")
    assert keep_original(first) is None  # kept once: the import, not a later save
    assert original_path(first).read_bytes() == before == clean_file.read_bytes()
    csv = tmp_path / "rows.csv"
    csv.write_text("prompt,completion\nhi,there\n")
    assert save_target(import_dataset(project, csv)).name == "rows.jsonl"
    with pytest.raises(DataError, match="not one written by datasets"):
        import_dataset(project, tmp_path / "project")
    (tmp_path / "notes.docx").write_text("x")
    with pytest.raises(DataError, match="kind of file"):
        import_dataset(project, tmp_path / "notes.docx")


def test_blank_records_match_their_shape(tmp_path):
    from engine.data.shapes import detect_shape

    for columns in (
        ["messages"],
        ["conversations"],
        ["instruction", "output"],
        ["prompt", "completion"],
        ["text"],
    ):
        shape = detect_shape(columns)
        assert set(columns) <= set(blank_record(shape))


def test_every_kind_the_data_layer_reads_opens_for_editing(tmp_path):
    import datasets

    rows = [{"prompt": "p1", "completion": "c1"}, {"prompt": "p2", "completion": "c2"}]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    (tmp_path / "b.tsv").write_text("prompt\tcompletion\np1\tc1\np2\tc2\n")
    (tmp_path / "c.txt").write_text("first document\n\nsecond document\n")
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "d"))
    for name, shape_name in (
        ("a.json", "prompt_completion"),
        ("b.tsv", "prompt_completion"),
        ("c.txt", "text"),
        ("d", "prompt_completion"),
    ):
        store, shape = open_store(tmp_path / name)
        assert shape.name == shape_name and len(store) == 2, name
        target = save_target(tmp_path / name)
        assert target.suffix == ".jsonl" and not target.exists()
        save_store(store, target)
        assert [json.loads(line) for line in target.read_text().splitlines()] == contents(store)
    assert contents(open_store(tmp_path / "c.txt")[0]) == [
        {"text": "first document"},
        {"text": "second document"},
    ]


def test_a_chat_becomes_a_record_of_the_datasets_shape_and_is_appended(tmp_path):
    from engine.data.project_files import append_records
    from engine.data.shapes import detect_shape, record_for_shape

    chat_messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi?"},
        {"role": "assistant", "content": "Hello."},
    ]
    assert record_for_shape(chat_messages, detect_shape(["messages"])) == {"messages": chat_messages}
    assert record_for_shape(chat_messages, detect_shape(["conversations"]))["conversations"][1] == {
        "from": "human",
        "value": "Hi?",
    }
    assert record_for_shape(
        chat_messages,
        detect_shape(
            ["question", "answer"], "prompt_completion", {"prompt": "question", "completion": "answer"}
        ),
    ) == {"question": "Hi?", "answer": "Hello."}
    alpaca = record_for_shape(chat_messages, detect_shape(["instruction", "output"]))
    assert alpaca == {"instruction": "Hi?", "input": "", "output": "Hello.", "system": "Be brief."}
    with pytest.raises(DataError, match="single exchanges"):
        record_for_shape(chat_messages + chat_messages[1:], detect_shape(["prompt", "completion"]))
    with pytest.raises(DataError, match="plain text"):
        record_for_shape(chat_messages, detect_shape(["text"]))

    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text(json.dumps(chat("a", "b")))  # no newline at the end
    append_records(jsonl, [chat("c", "d")])
    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == [chat("a", "b"), chat("c", "d")]
    store, _shape = open_store(jsonl)
    save_store(store, tmp_path / "rows.parquet")
    append_records(tmp_path / "rows.parquet", [chat("e", "f")])
    assert contents(open_store(tmp_path / "rows.parquet")[0])[-1] == chat("e", "f")
    append_records(tmp_path / "new.jsonl", [chat("g", "h")])
    assert json.loads((tmp_path / "new.jsonl").read_text()) == chat("g", "h")
    (tmp_path / "rows.csv").write_text("prompt,completion\na,b\n")
    with pytest.raises(DataError, match="JSON Lines or Parquet"):
        append_records(tmp_path / "rows.csv", [chat("g", "h")])
