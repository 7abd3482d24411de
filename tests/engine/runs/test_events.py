"""The events format (engine.runs.events): one parser, the readers forwards, backwards and as a tail."""

from __future__ import annotations

import json

import pytest

from engine.runs.events import EventLog, first_event, iter_backwards, parse_event, read_events
from engine.runs.state import last_events
from engine.runs.tail import EventTail
from engine.runs.text import event_text, stamped_text


def write(path, events, tail=""):
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + tail, encoding="utf-8")


def test_a_line_is_an_event_only_if_it_is_a_json_object():
    assert parse_event(b'{"type": "metrics", "step": 1}\n') == {"type": "metrics", "step": 1}
    assert parse_event('{"time": 1, "type": "status"}') == {"time": 1, "type": "status"}  # any key order
    for junk in (b"", b"[1, 2]", b'"text"', b"{not json", b'{"message": "caf\xe9"}', b"[" * 100_000):
        assert parse_event(junk) is None  # damaged, not an object, not UTF-8 or absurdly nested: skipped


def test_backwards_yields_complete_events_newest_first_across_blocks(tmp_path):
    path = tmp_path / "events.jsonl"
    events = [{"type": "metrics", "step": i, "pad": "x" * (i % 37)} for i in range(500)]
    write(path, events, tail='{"type": "status", "sta')  # a torn last line is not an event
    for block in (7, 64, 1 << 16):
        assert [e["step"] for e in iter_backwards(path, block=block)] == list(range(499, -1, -1))
    end = len((json.dumps(events[0]) + "\n").encode()) * 1  # just after the first line
    assert [e["step"] for e in iter_backwards(path, end=end)] == [0]
    assert list(iter_backwards(tmp_path / "missing.jsonl")) == []
    path.write_text('{"type": "status"')  # nothing complete at all
    assert list(iter_backwards(path)) == [] and first_event(path) is None


def test_readers_skip_bad_lines_and_never_raise_on_foreign_bytes(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        b'{"type": "status", "state": "loading"}\nnot json\n'
        b'{"type": "warning", "message": "caf\xe9"}\n'
        b'{"type": "metrics", "step": 1}\n{"type": "metr'
    )
    assert [e["type"] for e in read_events(path)] == ["status", "metrics"]
    assert [e["type"] for e in iter_backwards(path)] == ["metrics", "status"]
    assert first_event(path)["state"] == "loading"


def test_last_events_stop_at_the_newest_metrics(tmp_path, monkeypatch):
    path = tmp_path / "events.jsonl"
    steps = ({"type": "metrics", "step": i} for i in range(1, 1001))
    lines = [{"type": "status", "state": "training"}, *steps]
    write(path, lines)
    parsed = []
    real = parse_event
    monkeypatch.setattr("engine.runs.events.parse_event", lambda line: parsed.append(line) or real(line))
    found = last_events(path)
    assert found.metrics["step"] == 1000 and found.status is None and found.error is None
    assert len(parsed) == 1  # a live run: its status is far back and is not final, so it is not looked for

    write(path, lines + [{"type": "error", "message": "m"}, {"type": "status", "state": "failed"}])
    parsed.clear()
    found = last_events(path)
    assert (found.status["state"], found.error["message"], found.metrics["step"]) == ("failed", "m", 1000)
    assert len(parsed) == 3

    # A resume after a failure: the old error belongs to the old ending.
    write(
        path,
        lines
        + [
            {"type": "error", "message": "m"},
            {"type": "status", "state": "failed"},
            {"type": "status", "state": "loading"},
        ],
    )
    found = last_events(path)
    assert found.status["state"] == "loading" and found.error is None


def test_the_tail_tells_where_its_complete_lines_end_and_can_stop_at_a_byte(tmp_path):
    path = tmp_path / "events.jsonl"
    first = json.dumps({"type": "metrics", "step": 1}) + "\n"
    path.write_text(first + '{"type": "metrics", "st')
    tail = EventTail(path)
    assert [e["step"] for e in tail.read_new()] == [1]
    assert tail.position == len(first) and tail.offset > tail.position  # the torn line waits
    with open(path, "a") as handle:
        handle.write('ep": 2}\n{"type": "eval", "step": 2}\n')
    second_end = len(first) + len('{"type": "metrics", "step": 2}\n')
    limited = EventTail(path, offset=len(first))
    assert [e["step"] for e in limited.read_new(end=second_end)] == [2] and limited.position == second_end
    assert limited.read_new(end=second_end) == []


def test_events_are_put_into_words_once_for_the_cli_and_the_monitor():
    metrics = {
        "type": "metrics",
        "step": 3,
        "max_steps": 10,
        "loss": 1.23456,
        "learning_rate": 2e-4,
        "grad_norm": 0.5,
        "tokens_per_second": 1234.4,
        "peak_memory_mb": 512.0,
    }
    assert event_text(metrics) == "step 3/10  loss 1.2346  lr 2.00e-04  grad 0.500  1234 tok/s  peak 512 MB"
    # A NaN loss is written as null: the line says "?" instead of crashing the CLI.
    assert "loss ?" in event_text(dict(metrics, loss=None, tokens_per_second=None))
    stopped = {"type": "status", "state": "stopped", "step": 7, "message": "why"}
    assert event_text(stopped) == "[stopped] at step 7 — why"
    assert event_text({"type": "checkpoint", "step": 4}) == "checkpoint saved at step 4"
    assert event_text({"type": "eval", "step": 4, "eval_loss": None}) is None
    problems = [f"row {i}" for i in range(7)]
    warning = event_text({"type": "warning", "message": "Skipped 7 rows.", "problems": problems})
    assert warning.splitlines() == ["warning: Skipped 7 rows.", *(f"  row {i}" for i in range(5)), "  ..."]
    error = {"type": "error", "message": "No memory.", "hint": "Lower it."}
    assert event_text(error) == "error: No memory. Lower it."
    data = {"type": "data", "train_rows": 9, "validation_rows": 1, "trained_tokens": 90, "tokens": 120}
    assert event_text(data) == "data: 9 training rows, 1 validation rows, 90 trained tokens of 120"
    assert event_text({"type": "info"}) is None
    auto = dict(data, validation={"rows": 1, "source": "auto"})
    assert event_text(auto) == (
        "data: 9 training rows, 1 validation rows (held out automatically), 90 trained tokens of 120"
    )
    assert event_text({"type": "info", "message": "Stopping early."}) == "Stopping early."
    assert stamped_text({"type": "checkpoint", "step": 4, "time": 0}).endswith("  checkpoint saved at step 4")


def test_the_cli_prints_the_same_words(capsys):
    from engine.cli.main import print_event

    print_event({"type": "checkpoint", "step": 4})
    print_event({"type": "error", "message": "printed once by main()"})
    print_event({"type": "metrics", "step": 1, "max_steps": None, "loss": None})
    assert capsys.readouterr().out.splitlines() == [
        "checkpoint saved at step 4",
        "step 1/?  loss ?  lr 0.00e+00  grad 0.000  ? tok/s  peak ? MB",
    ]


@pytest.mark.parametrize("state", ["done", "failed"])
def test_what_the_writer_writes_the_readers_read(tmp_path, state):
    log = EventLog(tmp_path / "events.jsonl")
    log.status("training", step=0)
    log.emit("metrics", step=1, loss=float("nan"))
    if state == "failed":
        log.error("oom", "Out of memory.", "Lower the batch size.")
    log.status(state)
    log.close()
    found = last_events(tmp_path / "events.jsonl")
    assert found.status["state"] == state and found.metrics == {**found.metrics, "step": 1, "loss": None}
    assert (found.error or {}).get("kind") == ("oom" if state == "failed" else None)
