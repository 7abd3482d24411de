"""How the GUI reads a run folder it follows: torn lines, and how every kind of end is told."""

from __future__ import annotations

from app.train.supervisor import judge_end
from engine.runs.events import EventLog
from engine.runs.state import OUTPUT_LOG_NAME
from engine.runs.tail import EventTail


def test_the_tail_returns_only_complete_lines_and_picks_up_the_rest_later(tmp_path):
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.read_new() == []  # no file yet
    path.write_text('{"type": "metrics", "step": 1}\n{"type": "metrics", "st')
    assert [e["step"] for e in tail.read_new()] == [1]
    with open(path, "a") as handle:
        handle.write('ep": 2}\nnot json\n{"type": "eval", "step": 2}\n')
    assert [e["type"] for e in tail.read_new()] == ["metrics", "eval"]
    assert tail.at_end()
    path.write_text('{"type": "status", "state": "loading"}\n')  # replaced by a shorter file: start over
    assert tail.read_new()[0]["state"] == "loading"


def end(run_dir, status, exit_code, error=None):
    verdict = judge_end(run_dir, status, error, exit_code)
    return verdict.state, verdict.text


def test_every_end_of_a_run_gets_a_state_and_a_message_and_only_done_is_done(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    error = log.error("oom", "Out of memory while training.", "Try: lower training.batch_size.")
    failed = log.status("failed")
    log.close()
    state, message = end(tmp_path, failed, 2, error)
    assert state == "failed" and "Out of memory" in message and "batch_size" in message

    assert end(tmp_path, {"state": "done"}, 0)[0] == "done"
    assert end(tmp_path, {"state": "stopped", "step": 7, "paused": True}, 3) == (
        "paused",
        "Paused at step 7; a checkpoint is saved, so you can resume.",
    )
    assert end(tmp_path, {"state": "stopped", "step": 7}, 3)[0] == "stopped"

    # Killed mid-training: the last status says "training", the process is gone.
    state, message = end(tmp_path, {"state": "training"}, -9)
    assert state == "interrupted" and "killed or crashed" in message and "exit code -9" in message

    # Refused before it started (bad settings): the engine's own error line, and the run is left as it was.
    (tmp_path / OUTPUT_LOG_NAME).write_text(
        "--- launch\nerror: training.max_steps = 4 is too few. Set more.\n"
    )
    files = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert end(tmp_path, None, 2) == ("refused", "training.max_steps = 4 is too few. Set more.")
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == files  # nothing written


def test_the_log_says_when_a_run_trains_on_several_processes():
    from engine.runs.text import event_text

    event = {
        "type": "model",
        "time": 0,
        "device": "cuda",
        "dtype": "bfloat16",
        "trainable_parameters": 10,
        "total_parameters": 100,
    }
    assert "processes" not in event_text(event)
    assert "model on cuda × 4 processes (data-parallel" in event_text(dict(event, world_size=4))
