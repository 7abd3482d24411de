"""Property tests: malformed, mixed and random files never crash the readers or lose a row silently."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.data.reading import read_data
from engine.errors import DataError

GOOD = [
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
    {"prompt": "p", "completion": "c"},
    {"conversations": [{"from": "human", "value": "h"}, {"from": "gpt", "value": "g"}]},
    {"instruction": "i", "output": "o"},
    {"text": "t"},
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
line = st.one_of(
    st.sampled_from(GOOD).map(json.dumps),
    json_values.map(json.dumps),
    st.dictionaries(
        st.sampled_from(["messages", "prompt", "completion", "role", "content", "text"]),
        json_values,
        max_size=3,
    ).map(json.dumps),
    st.binary(max_size=30).filter(lambda b: b"\n" not in b and b"\r" not in b),
    st.text(max_size=20).filter(lambda t: "\n" not in t and "\r" not in t and "\x0b" not in t),
)


def as_bytes(item) -> bytes:
    return item if isinstance(item, bytes) else item.encode("utf-8", "surrogatepass")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(line, min_size=0, max_size=12))
def test_jsonl_readers_never_crash_and_account_for_every_record(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("fuzz") / "data.jsonl"
    path.write_bytes(b"\n".join(as_bytes(item) for item in lines))
    records = sum(1 for raw in path.read_bytes().split(b"\n") if raw.strip())
    try:
        result = read_data(path)
    except DataError as exc:
        assert exc.message  # a clear message, never a crash
        return
    errors = [p for p in result.problems if p.severity == "error"]
    # Every record is either a usable row or a reported problem: nothing is dropped silently.
    assert len(result.rows) + len(errors) == records == result.records
    assert sorted(result.row_numbers + [p.row for p in errors]) == list(range(1, records + 1))
    for problem in result.problems:
        assert problem.line is not None and problem.message


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    records=st.lists(st.one_of(st.sampled_from(GOOD), json_values), max_size=8),
    shape=st.sampled_from(["auto", "messages", "sharegpt", "alpaca", "prompt_completion", "text"]),
)
def test_json_files_with_any_shape_choice_never_crash(tmp_path_factory, records, shape):
    path = tmp_path_factory.mktemp("fuzz") / "data.json"
    path.write_text(json.dumps(records))
    try:
        result = read_data(path, shape)
    except DataError as exc:
        assert exc.message
        return
    errors = [p for p in result.problems if p.severity == "error"]
    assert len(result.rows) + len(errors) == len(records)


def test_files_that_crash_pyarrows_json_reader_are_read_line_by_line(tmp_path):
    """pyarrow 26 segfaults on a file that is just `null`; such files must never reach it."""
    for content, rows in (
        (b"null", 0),
        (b'{"text": "a"}\nnull', 1),
        (b'{"text": "a"}\n\n{"text": "b"}\n', 2),
    ):
        path = tmp_path / "d.jsonl"
        path.write_bytes(content)
        try:
            result = read_data(path)
        except DataError as exc:
            assert rows == 0 and "no usable rows" in exc.message
            continue
        assert len(result.rows) == rows


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    content=st.one_of(
        st.binary(max_size=200),
        st.lists(st.lists(st.text(max_size=10), min_size=1, max_size=4), max_size=6).map(
            lambda rows: "\n".join(",".join(cells) for cells in rows).encode("utf-8", "surrogatepass")
        ),
    ),
    suffix=st.sampled_from([".csv", ".tsv", ".txt", ".parquet", ".json"]),
)
def test_other_readers_never_crash_on_random_bytes(tmp_path_factory, content, suffix):
    path = tmp_path_factory.mktemp("fuzz") / f"data{suffix}"
    path.write_bytes(content)
    try:
        result = read_data(path)
    except DataError as exc:
        assert exc.message
        return
    errors = [p for p in result.problems if p.severity == "error"]
    assert len(result.rows) + len(errors) == result.records
