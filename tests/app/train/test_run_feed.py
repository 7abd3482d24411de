"""One watcher per active run, and views fed from it: history once, then live events, nothing twice."""

from __future__ import annotations

import json

from app.train.run_manager import RunManager
from app.train.supervisor import HISTORY_CHUNK
from engine.runs.state import remove_pid_file, write_pid_file


def append(run_dir, *events):
    with open(run_dir / "events.jsonl", "a", encoding="utf-8") as handle:
        for event in events:
            handle.write(json.dumps({"time": 1.0, **event}) + "\n")


def metrics(first, last):
    return [{"type": "metrics", "step": step, "loss": 1.0} for step in range(first, last + 1)]


class Seen:
    def __init__(self, feed):
        self.batches = []
        feed.events.connect(self.batches.append)

    def steps(self):
        return [e["step"] for batch in self.batches for e in batch if e.get("type") == "metrics"]


def test_a_finished_run_is_fed_its_whole_history_in_parts(qtbot, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    total = 2 * HISTORY_CHUNK + 10
    append(
        run_dir,
        {"type": "status", "state": "training"},
        *metrics(1, total),
        {"type": "status", "state": "done"},
    )
    manager = RunManager()
    feed = manager.follow(run_dir)
    seen = Seen(feed)
    qtbot.waitUntil(lambda: not feed.loading(), timeout=10000)
    assert seen.steps() == list(range(1, total + 1)) and len(seen.batches) >= 3  # paced parts, in order
    assert seen.batches[-1][-1]["state"] == "done"
    feed.close()


def test_a_live_run_feeds_its_history_then_the_watchers_batches_and_ends_once(qtbot, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    append(
        run_dir,
        {"type": "status", "state": "loading"},
        {"type": "status", "state": "training"},
        *metrics(1, 5),
    )
    manager = RunManager()
    early = manager.follow(run_dir)  # shown before its engine was found running
    early_seen = Seen(early)
    qtbot.waitUntil(lambda: not early.loading(), timeout=10000)
    append(run_dir, *metrics(6, 8))  # written while nobody follows it: the early feed must not lose these

    write_pid_file(run_dir)  # this test process plays the engine
    written = []
    manager.events.connect(lambda path, events: written.append((path, events)))
    manager.attach(run_dir)
    assert manager.is_active(run_dir)
    append(run_dir, *metrics(9, 12))
    qtbot.waitUntil(lambda: any(e.get("step") == 12 for _run, batch in written for e in batch), timeout=10000)
    late = manager.follow(run_dir)  # a view opened mid-run: history up to the watcher, then live
    late_seen = Seen(late)
    append(run_dir, *metrics(13, 15))
    qtbot.waitUntil(lambda: late_seen.steps()[-1:] == [15] and early_seen.steps()[-1:] == [15], timeout=10000)
    assert late_seen.steps() == early_seen.steps() == list(range(1, 16))  # no gap, nothing twice
    assert all(path == run_dir for path, _batch in written)
    assert [e["step"] for _path, batch in written for e in batch] == list(range(9, 16))  # only what is new

    with qtbot.waitSignal(manager.finished, timeout=10000) as ended:
        append(
            run_dir, {"type": "status", "state": "saving"}, {"type": "status", "state": "done", "step": 15}
        )
        remove_pid_file(run_dir)
    assert ended.args == [run_dir, "done", "Finished: the adapter is saved."]
    assert not manager.is_active(run_dir)
    assert late_seen.batches[-1][-1]["state"] == "done" and early_seen.batches[-1][-1]["state"] == "done"
    for feed in (early, late):
        feed.close()


def test_a_re_attached_run_that_died_unseen_is_interrupted_and_one_that_failed_says_why(qtbot, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    append(run_dir, {"type": "status", "state": "training"}, *metrics(1, 3))
    manager = RunManager()
    with qtbot.waitSignal(manager.finished, timeout=10000) as ended:
        manager.attach(run_dir)  # no engine.pid: the engine is gone
    assert ended.args[1] == "interrupted" and "killed or crashed" in ended.args[2]

    # It failed after the scan that found it running but before the watcher started: the file says why.
    append(
        run_dir,
        {"type": "error", "message": "Out of memory.", "hint": "Lower the batch size."},
        {"type": "status", "state": "failed"},
    )
    with qtbot.waitSignal(manager.finished, timeout=10000) as ended:
        manager.attach(run_dir)
    assert ended.args[1:] == ["failed", "Out of memory. Lower the batch size."]


def test_a_closed_windows_manager_attaches_nothing_and_a_deleted_one_is_never_called(
    qtbot, tmp_path, monkeypatch
):
    import threading

    import shiboken6

    raised = []
    monkeypatch.setattr(threading, "excepthook", lambda args: raised.append(args.exc_value))

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    append(run_dir, {"type": "status", "state": "training"}, *metrics(1, 3))
    write_pid_file(run_dir)  # this test process plays the engine
    closed = RunManager()
    closed.shutdown()
    closed.attach(run_dir)  # the last scan of a closing window finds the run "running"
    assert not closed.is_active(run_dir)

    deleted = RunManager()
    deleted.attach(run_dir)
    watcher = deleted._watchers[run_dir]
    shiboken6.delete(deleted)  # its window went away without a shutdown
    append(run_dir, *metrics(4, 5))  # the watcher has something to hand on, and no one to hand it to
    qtbot.waitUntil(lambda: not watcher._thread.is_alive(), timeout=10000)
    assert raised == []  # it stopped quietly
    remove_pid_file(run_dir)
