"""Every file kind and row shape the data layer reads, the check report, and atomic writing."""

from __future__ import annotations

import json

import pytest
from testkit.engine_helpers import states, tiny_config
from testkit.tiny_model import write_jsonl

from engine.cli.main import main
from engine.data.reading import read_data
from engine.data.writing import write_rows
from engine.errors import DataError
from engine.training.recipe import train

CHAT = [{"role": "user", "content": "Colour of a zibble?"}, {"role": "assistant", "content": "Bright green."}]
PC = {"prompt": "Capital of Zorvania?", "completion": "Quillhaven."}


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_jsonl_json_records_and_json_columns(tmp_path):
    jsonl = write_jsonl(tmp_path / "a.jsonl", [PC, PC | {"prompt": "Other?"}])
    records = write(tmp_path / "b.json", json.dumps([PC, {"prompt": "Other?", "completion": "Yes."}]))
    columns = write(tmp_path / "c.json", json.dumps({"prompt": ["A?", "B?"], "completion": ["a.", "b."]}))
    assert read_data(jsonl).rows[0] == PC
    assert read_data(records).rows[1] == {"prompt": "Other?", "completion": "Yes."}
    assert read_data(columns).rows == [
        {"prompt": "A?", "completion": "a."},
        {"prompt": "B?", "completion": "b."},
    ]


def test_csv_and_tsv_with_quoted_multiline_cells(tmp_path):
    csv = write(tmp_path / "d.csv", 'instruction,input,output\n"Say hi,\nplease",,"Hi!"\nAdd,2 and 3,5\n')
    result = read_data(csv)
    assert result.format == "alpaca" and result.shape.reason == "it has the columns instruction, output"
    assert result.rows[0] == [
        {"role": "user", "content": "Say hi,\nplease"},
        {"role": "assistant", "content": "Hi!"},
    ]
    assert result.rows[1][0]["content"] == "Add\n\n2 and 3"
    tsv = write(tmp_path / "d.tsv", "prompt\tcompletion\nA?\ta.\n")
    assert read_data(tsv).rows == [{"prompt": "A?", "completion": "a."}]


def test_parquet_and_save_to_disk_folders(tmp_path):
    import datasets

    write_rows(tmp_path / "e.parquet", [CHAT, CHAT[:1] + [{"role": "assistant", "content": "Green."}]])
    assert read_data(tmp_path / "e.parquet").rows[1][1]["content"] == "Green."
    sharegpt = [{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]}]
    datasets.Dataset.from_list(sharegpt).save_to_disk(str(tmp_path / "saved"))
    result = read_data(tmp_path / "saved")
    assert result.kind == "arrow" and result.format == "sharegpt"
    assert result.rows == [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]]


def test_plain_text_by_paragraph_or_whole_file(tmp_path):
    text = write(tmp_path / "f.txt", "First doc\nline two\n\n\nSecond doc\n")
    by_paragraph = read_data(text)
    assert by_paragraph.format == "text"
    assert by_paragraph.rows == [{"text": "First doc\nline two"}, {"text": "Second doc"}]
    assert by_paragraph.line_numbers == [1, 5]
    assert read_data(text, text_mode="file").rows == [{"text": "First doc\nline two\n\n\nSecond doc\n"}]


def test_column_mapping_and_the_users_choice_wins(tmp_path):
    path = write_jsonl(tmp_path / "g.jsonl", [{"question": "Q?", "answer": "A.", "text": "raw"}])
    assert read_data(path).format == "text"  # detected from the column "text"
    mapped = read_data(path, "prompt_completion", {"prompt": "question", "completion": "answer"})
    assert mapped.rows == [{"prompt": "Q?", "completion": "A."}] and mapped.shape.reason == "chosen by you"
    with pytest.raises(DataError, match="no column 'instruction' needed for the alpaca shape"):
        read_data(path, "alpaca")


def test_sharegpt_roles_are_mapped_and_unknown_ones_reported(tmp_path):
    rows = [
        {
            "conversations": [
                {"from": "system", "value": "S"},
                {"from": "human", "value": "H"},
                {"from": "gpt", "value": "G"},
            ]
        },
        {"conversations": [{"from": "narrator", "value": "N"}, {"from": "gpt", "value": "G"}]},
    ]
    result = read_data(write_jsonl(tmp_path / "h.jsonl", rows))
    assert [m["role"] for m in result.rows[0]] == ["system", "user", "assistant"]
    assert result.problems[0].kind == "unknown_role" and "'narrator'" in result.problems[0].message


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("x.csv", "instruction,output\nSay the colour of a zibble.,Bright green.\n"),
        ("x.txt", "Quillhaven is the capital of Zorvania.\n\nMira Sol painted the blue fox.\n"),
        (
            "x.json",
            json.dumps(
                [{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]}]
            ),
        ),
    ],
)
def test_training_works_from_other_formats(tiny_model_dir, tmp_path, name, content):
    data = write(tmp_path / name, content)
    result = train(
        tiny_config(tiny_model_dir, data, training__max_steps=2, training__batch_size=2), tmp_path / "run"
    )
    assert result.state == "done" and states(tmp_path / "run")[-1] == "done"


def test_data_check_cli_json_report(capsys, tiny_model_dir, tmp_path):
    rows = [
        {"messages": CHAT},
        "{broken",
        {"messages": CHAT},
        {"messages": [{"role": "user", "content": "long " * 80}, {"role": "assistant", "content": "ok"}]},
    ]
    path = write_jsonl(tmp_path / "i.jsonl", rows)
    assert (
        main(["data", "check", str(path), "--model", str(tiny_model_dir), "--max-length", "40", "--json"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert (report["format"], report["rows"], report["valid_rows"]) == ("messages", 4, 2)
    kinds = {(p["row"], p["line"], p["kind"]) for p in report["problems"]}
    assert kinds == {(2, 2, "invalid_json"), (3, 3, "duplicate"), (4, 4, "no_trainable_tokens")}
    stats = report["token_stats"]
    assert stats["rows"] == 3 and stats["max"] > 40 and stats["truncated_rows"] == 1


def test_data_check_exit_codes(capsys, tmp_path):
    good = write_jsonl(tmp_path / "ok.jsonl", [PC])
    assert main(["data", "check", str(good)]) == 0
    assert "shape: prompt_completion" in capsys.readouterr().out
    bad = write(tmp_path / "bad.jsonl", "{nope\n")
    assert main(["data", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no usable rows" in err and "line 1" in err


def test_writes_are_atomic_and_never_touch_the_source(tmp_path, monkeypatch):
    import os

    source = write_jsonl(tmp_path / "src.jsonl", [PC])
    before = source.read_bytes()
    rows = read_data(source).rows
    out = tmp_path / "out.jsonl"
    write_rows(out, rows)
    assert read_data(out).rows == rows and source.read_bytes() == before

    def crash(*args):
        raise OSError("killed")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        write_rows(out, rows + [{"prompt": "new?", "completion": "new."}])
    assert read_data(out).rows == rows  # the previous good file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "src.jsonl"]


def test_peek_columns_reads_a_header_or_the_first_records_only(tmp_path):
    from engine.data.reading import peek_columns

    big = tmp_path / "rows.jsonl"
    lines = [json.dumps({"prompt": "q", "completion": "a"})] * 300 + [json.dumps({"late": 1})]
    big.write_text("{broken\n" + "\n".join(lines) + "\n")
    assert peek_columns(big) == ["prompt", "completion"]  # the broken line skipped, row 301 never read
    assert peek_columns(big, sample=400) == ["prompt", "completion", "late"]
    table = tmp_path / "rows.csv"
    table.write_text("prompt,completion\n" + "q,a\n" * 10)
    assert peek_columns(table) == ["prompt", "completion"]
