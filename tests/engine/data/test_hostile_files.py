"""Hostile data files (issue 18): each bad record costs only itself, every refusal is one clear reason."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from testkit.tiny_model import write_jsonl
from transformers import AutoTokenizer

from engine.cli.main import main
from engine.data import long_rows
from engine.data.jsonl import read_clean_jsonl
from engine.data.project_files import import_dataset
from engine.data.reading import read_data
from engine.data.rendering import render_row
from engine.data.row_store import open_store, row_text, save_store
from engine.data.stats import token_length_stats
from engine.data.tokenizing import iter_rendered
from engine.errors import DataError

PC = {"prompt": "Capital of Zorvania?", "completion": "Quillhaven."}
OTHER = {"prompt": "Colour of a zibble?", "completion": "Bright green."}
BOM = b"\xef\xbb\xbf"


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def lines(path: Path, *texts: str) -> Path:
    path.write_bytes("".join(t + "\n" for t in texts).encode("utf-8"))
    return path


def deep_line(depth: int) -> str:
    return '{"prompt": "x", "completion": "y", "z": ' + nested(depth) + "}"


# -- 6: nesting ------------------------------------------------------------------------------


def test_a_jsonl_line_nested_100k_deep_costs_only_that_line(tmp_path):
    """pyarrow's reader crashed the process (SIGSEGV); run apart so a crash fails just this test."""
    path = lines(tmp_path / "deep.jsonl", json.dumps(PC), deep_line(100_000), json.dumps(OTHER))
    code = (
        f"from engine.data.reading import read_data; r = read_data(r'{path}'); "
        "print(len(r.rows), [(p.line, p.kind) for p in r.problems])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "2 [(2, 'too_deep')]"


def test_only_lines_with_thousands_of_brackets_are_kept_from_pyarrow(tmp_path):
    from engine.data.jsonl import ARROW_MAX_OPENERS, scan_clean_jsonl

    chat = {"messages": [{"role": "user", "content": "long " * 2000}, {"role": "assistant", "content": "ok"}]}
    long_lines = lines(tmp_path / "long.jsonl", json.dumps(chat), json.dumps(chat | {"n": 2}))
    assert scan_clean_jsonl(long_lines) == (2, 0)  # long lines with few brackets stay on the fast path
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}] * (
        ARROW_MAX_OPENERS // 2 + 1
    )
    many = lines(tmp_path / "many.jsonl", json.dumps(chat), json.dumps({"messages": turns}))
    assert scan_clean_jsonl(many) is None
    assert len(read_data(many).rows) == 2  # the line reader takes them, nothing lost


@pytest.mark.parametrize("depth", [150, 2_000])
def test_deep_jsonl_lines_are_row_problems(tmp_path, depth):
    path = lines(
        tmp_path / "deep.jsonl",
        json.dumps(PC),
        deep_line(depth),
        "[" * depth + "]" * depth,
        json.dumps(OTHER),
    )
    result = read_data(path)
    assert result.rows == [PC, OTHER]
    assert [(p.line, p.kind, p.message) for p in result.problems] == [
        (2, "too_deep", "nested more than 100 levels deep"),
        (3, "too_deep", "nested more than 100 levels deep"),
    ]


def test_a_deep_record_in_a_json_list_costs_only_that_record(tmp_path):
    for depth in (150, 5_000):
        path = tmp_path / f"deep{depth}.json"
        path.write_text(f"[{json.dumps(PC)}, {deep_line(depth)}, {json.dumps(OTHER)}]", encoding="utf-8")
        result = read_data(path)
        assert result.rows == [PC, OTHER]
        assert [(p.row, p.kind) for p in result.problems] == [(2, "too_deep")]


def test_deep_json_columns_are_one_clear_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"prompt": [' + nested(5_000) + '], "completion": ["a"]}', encoding="utf-8")
    with pytest.raises(DataError, match="nested more than 100 levels deep"):
        read_data(path)


def test_the_row_store_keeps_a_deep_line_as_a_broken_row(tmp_path):
    deep = deep_line(5_000)
    path = lines(tmp_path / "deep.jsonl", json.dumps(PC), deep, json.dumps(OTHER))
    store, shape = open_store(path)
    assert shape.name == "prompt_completion" and len(store) == 3
    assert row_text(store.record(1)) == deep
    save_store(store, tmp_path / "saved.jsonl")
    assert (tmp_path / "saved.jsonl").read_text(encoding="utf-8").splitlines()[1] == deep


# -- 7: bytes that are not UTF-8 -------------------------------------------------------------


def test_a_latin1_jsonl_line_is_a_row_problem(tmp_path, capsys):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(
        (json.dumps(PC) + "\n").encode()
        + '{"prompt": "café", "completion": "y"}\n'.encode("latin-1")
        + (json.dumps(OTHER) + "\n").encode()
    )
    result = read_data(path)
    assert result.rows == [PC, OTHER]
    [problem] = result.problems
    assert (problem.line, problem.kind) == (2, "not_utf8") and "not UTF-8 at byte 16" in problem.message
    assert main(["data", "check", str(path)]) == 0
    assert "usable rows: 2 of 3" in capsys.readouterr().out
    store, _shape = open_store(path)
    assert len(store) == 3


def test_a_latin1_paragraph_of_a_text_file_costs_only_that_paragraph(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"First paragraph.\n\nCaf\xe9 second.\nmore\n\nThird one.\n")
    result = read_data(path)
    assert result.rows == [{"text": "First paragraph."}, {"text": "Third one."}]
    assert [(p.row, p.line, p.kind) for p in result.problems] == [(2, 3, "not_utf8")]


def test_a_parquet_string_that_is_not_utf8_costs_only_its_row(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = b"hi" + "café".encode("latin-1") + b"ok"
    offsets = pa.array([0, 2, 6, 8], type=pa.int32()).buffers()[1]
    prompts = pa.Array.from_buffers(pa.string(), 3, [None, offsets, pa.py_buffer(data)])
    path = tmp_path / "latin.parquet"
    pq.write_table(pa.table({"prompt": prompts, "completion": ["a", "b", "c"]}), path)
    result = read_data(path)
    assert result.rows == [{"prompt": "hi", "completion": "a"}, {"prompt": "ok", "completion": "c"}]
    assert [(p.row, p.kind) for p in result.problems] == [(2, "not_utf8")]
    assert "column 'prompt' is not UTF-8 at byte 4" in result.problems[0].message


# -- 8: CSV cells are text -------------------------------------------------------------------


@pytest.mark.parametrize("suffix, sep", [(".csv", ","), (".tsv", "\t")])
def test_csv_cells_that_look_like_numbers_stay_text(tmp_path, suffix, sep):
    path = tmp_path / f"numbers{suffix}"
    path.write_text(
        f"prompt{sep}completion\nwhat is 0?{sep}0\nage{sep}25\nzip{sep}007\nhalf{sep}1.50\n", encoding="utf-8"
    )
    result = read_data(path)
    assert [r["completion"] for r in result.rows] == ["0", "25", "007", "1.50"] and not result.problems


def test_a_latin1_csv_names_the_encoding_problem(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("prompt,completion\ncafé,ok\nhi,there\n".encode("latin-1"))
    result = read_data(path)
    assert result.rows == [{"prompt": "hi", "completion": "there"}]
    [problem] = result.problems
    assert problem.row == 1 and problem.kind == "not_utf8"
    assert "not UTF-8" in problem.message and "Latin-1" in problem.message and "bytes" not in problem.message
    header = tmp_path / "header.csv"
    header.write_bytes("café,completion\nx,y\n".encode("latin-1"))
    with pytest.raises(DataError, match="header that is not UTF-8"):
        read_data(header)


# -- 9: byte order marks ---------------------------------------------------------------------


def test_a_bom_is_accepted_in_every_text_format(tmp_path):
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes(BOM + (json.dumps(PC) + "\n" + json.dumps(OTHER) + "\n").encode())
    assert read_data(jsonl).rows == [PC, OTHER] and not read_data(jsonl).problems
    assert read_clean_jsonl(jsonl)[1] == 2  # still pyarrow's fast reader
    store, _shape = open_store(jsonl)
    assert [r for _i, r in store.iter_records()] == [PC, OTHER]
    js = tmp_path / "bom.json"
    js.write_bytes(BOM + json.dumps([PC]).encode())
    assert read_data(js).rows == [PC]
    csv = tmp_path / "bom.csv"
    csv.write_bytes(BOM + b"prompt,completion\na,b\n")
    assert read_data(csv).rows == [{"prompt": "a", "completion": "b"}]
    txt = tmp_path / "bom.txt"
    txt.write_bytes(BOM + b"Hello there.\n")
    assert read_data(txt).rows == [{"text": "Hello there."}]


# -- 17: paths that cannot be read, and messages that name the cause ---------------------------


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe.jsonl"
    os.mkfifo(path)
    return path


def test_a_fifo_is_refused_without_opening_it(fifo, tmp_path):
    for read in (read_data, open_store, lambda p: import_dataset(tmp_path / "project", p)):
        with pytest.raises(DataError, match="named pipe"):
            read(fifo)


def test_project_create_refuses_a_fifo_with_exit_2(fifo, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WHETSTONE_HOME", str(tmp_path / "home"))
    assert main(["project", "create", "Piped", "--data", str(fifo)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "named pipe" in err and err.count("\n") == 1


def test_a_symlink_loop_is_named_as_such(tmp_path):
    loop = tmp_path / "loop.jsonl"
    loop.symlink_to(loop)
    with pytest.raises(DataError, match="loops back on itself"):
        read_data(loop)


def test_a_folder_without_search_permission_is_a_data_error(tmp_path, monkeypatch):
    (tmp_path / "locked").mkdir()
    path = write_jsonl(tmp_path / "locked" / "data.jsonl", [PC])
    real_stat = Path.stat

    def stat(self, *args, **kwargs):  # tests run as root, where chmod 000 stops nothing
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    for read in (read_data, open_store, lambda p: import_dataset(tmp_path / "project", p)):
        with pytest.raises(DataError, match="permission denied"):
            read(path)


def test_an_unreadable_file_is_a_data_error_for_import(tmp_path, monkeypatch):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(PC) + "\n", encoding="utf-8")
    real_open = os.open

    def deny(target, *args, **kwargs):
        if Path(target) == path:
            raise PermissionError(13, "Permission denied", str(target))
        return real_open(target, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(DataError, match="permission denied"):
        import_dataset(tmp_path / "project", path)


def test_a_mapped_column_that_does_not_exist_is_named(tmp_path, capsys):
    path = tmp_path / "q.csv"
    path.write_text("question,answer\nA?,a\n", encoding="utf-8")
    assert main(["data", "check", str(path), "--column", "prompt=nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "'nonexistent'" in err and "Cannot tell" not in err


def test_data_check_json_with_no_usable_rows_prints_its_report(tmp_path, capsys):
    path = lines(tmp_path / "bad.jsonl", "{nope", "[1]")
    assert main(["data", "check", str(path), "--json"]) == 2
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["valid_rows"] == 0 and [p["kind"] for p in report["problems"]] == [
        "invalid_json",
        "wrong_type",
    ]
    assert err.startswith("error: ") and "line 1: invalid JSON" in err and err.count("\n") == 1


def test_a_template_refusal_shows_its_cause(tiny_model_dir, tmp_path, capsys):
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    (model / "chat_template.jinja").write_text("{{ raise_exception('This model takes no chats today') }}")
    path = write_jsonl(tmp_path / "chat.jsonl", [PC, OTHER])
    assert main(["data", "check", str(path), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert "2 unrenderable" in err and "This model takes no chats today" in err and err.count("\n") == 1


# -- 18: rows far beyond the max length --------------------------------------------------------


class SpyTokenizer:
    """The real tokenizer, recording the longest text it was asked to tokenize."""

    def __init__(self, tokenizer) -> None:
        self._tokenizer = tokenizer
        self.longest = 0

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)

    def __call__(self, texts, **kwargs):
        self.longest = max([self.longest] + [len(t) for t in ([texts] if isinstance(texts, str) else texts)])
        return self._tokenizer(texts, **kwargs)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


def test_a_huge_row_is_measured_from_a_clipped_copy(tokenizer):
    max_length = 32
    huge = {"prompt": "Tell me.", "completion": "many words here " * 20_000}  # 320k characters
    spy = SpyTokenizer(tokenizer)
    [[rendered]] = list(iter_rendered(spy, [huge], max_length))
    assert spy.longest < max_length * long_rows.CHARS_PER_TOKEN + 1000  # never the whole row
    full = render_row(tokenizer, huge, max_length)
    assert (rendered.input_ids, rendered.labels) == (
        full.input_ids,
        full.labels,
    )  # what is trained is the same
    assert rendered.truncated_tokens == pytest.approx(full.truncated_tokens, rel=0.05)
    stats = token_length_stats(spy, [PC, huge], max_length)
    assert stats.truncated_rows == 1 and stats.max == pytest.approx(len(full.offsets), rel=0.05)


def test_a_huge_row_that_cannot_be_measured_is_refused_with_its_row(
    tmp_path, capsys, monkeypatch, tiny_model_dir
):
    monkeypatch.setattr(long_rows, "CHARS_PER_TOKEN", 0.25)  # as if tokens were far longer than the bound
    path = write_jsonl(tmp_path / "long.jsonl", [PC, {"prompt": "Go.", "completion": "word " * 20_000}])
    assert (
        main(["data", "check", str(path), "--model", str(tiny_model_dir), "--max-length", "400", "--json"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    [problem] = [p for p in report["problems"] if p["severity"] == "error"]
    assert (
        problem["line"] == 2
        and "too few tokens" in problem["message"]
        and "100,003 characters" in problem["message"]
    )
    assert report["valid_rows"] == 1


def test_data_check_reports_a_huge_rows_truncation_as_an_estimate(tmp_path, capsys, tiny_model_dir):
    path = write_jsonl(tmp_path / "long.jsonl", [PC, {"prompt": "Go.", "completion": "word " * 20_000}])
    assert main(["data", "check", str(path), "--model", str(tiny_model_dir), "--max-length", "32"]) == 0
    out = capsys.readouterr().out
    assert (
        "line 2: longer than the max length 32: will be truncated by about" in out
        and "100,003 characters" in out
    )


def test_a_latin1_record_in_a_json_list_costs_only_that_record(tmp_path):
    path = tmp_path / "latin.json"
    path.write_bytes(
        b"["
        + json.dumps(PC).encode()
        + b", "
        + '{"prompt": "café", "completion": "y"}'.encode("latin-1")
        + b", "
        + json.dumps(OTHER).encode()
        + b"]"
    )
    result = read_data(path)
    assert result.rows == [PC, OTHER]
    assert [(p.row, p.kind) for p in result.problems] == [(2, "not_utf8")]


def test_a_utf16_file_is_named_as_such(tmp_path):
    path = tmp_path / "notepad.jsonl"
    path.write_bytes((json.dumps(PC) + "\n").encode("utf-16"))
    with pytest.raises(DataError, match="UTF-16"):
        read_data(path)


def test_the_editors_review_names_why_a_kept_line_is_broken(tmp_path):
    from engine.data.review import review_store

    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        (json.dumps(PC) + "\n" + deep_line(3_000) + "\n").encode()
        + '{"prompt": "café", "completion": "y"}\n{nope\n'.encode("latin-1")
    )
    store, shape = open_store(path)
    review = review_store(store, shape)
    assert {row: [i.kind for i in issues] for row, issues in review.issues.items()} == {
        1: ["too_deep"],
        2: ["not_utf8"],
        3: ["invalid_json"],
    }


def test_a_number_in_a_json_row_is_named_in_jsons_words(tmp_path):
    path = write_jsonl(tmp_path / "n.jsonl", [PC, {"prompt": "2+2", "completion": 4}, {"prompt": "x"}])
    messages = [p.message for p in read_data(path).problems]
    assert messages == [
        "wrong type: completion is a number, not text",
        "wrong type: completion is missing or null, not text",
    ]


def test_cluster_bundle_refuses_a_fifo_as_training_data(fifo, tmp_path, capsys, tiny_model_dir):
    config = tmp_path / "setup.toml"
    config.write_text(f'[model]\npath = "{tiny_model_dir}"\n[data]\npath = "{fifo}"\n', encoding="utf-8")
    assert main(["cluster-bundle", str(config), str(tmp_path / "bundle")]) == 2
    assert "named pipe" in capsys.readouterr().err and not (tmp_path / "bundle").exists()
