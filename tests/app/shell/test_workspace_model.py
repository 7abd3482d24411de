"""The workspace model rescans on what changes a listing, not on every line a run writes."""

from __future__ import annotations

import json
import time

from app.shell.workspace_model import DEBOUNCE_MS


def metrics(step: int) -> str:
    event = {"type": "metrics", "time": time.time(), "step": step, "max_steps": 100, "loss": 1.0}
    return json.dumps(event) + "\n"


def settled(qtbot, window) -> int:
    """The scan count once no scan is pending or running."""
    model = window.workspace_model
    qtbot.waitUntil(
        lambda: not (model._debounce.isActive() or model._scanning or window.tasks.active()), timeout=10000
    )
    return model.scans


def test_a_metrics_write_does_not_rescan_but_status_checkpoints_and_new_runs_do(make_window, home, qtbot):
    from engine.workspace import Workspace

    project = Workspace(home).create_project("Watched")
    run_dir = project / "runs" / "run-1"
    run_dir.mkdir(parents=True)
    events = run_dir / "events.jsonl"
    events.write_text(json.dumps({"type": "status", "time": time.time(), "state": "training"}) + "\n")
    window = make_window()
    qtbot.waitUntil(lambda: window.workspace_model.project(project) is not None, timeout=10000)
    scans = settled(qtbot, window)

    # A run appending its metrics (as an engine does several times a second): no rescan, no page reload.
    for step in range(1, 21):
        with open(events, "a", encoding="utf-8") as handle:
            handle.write(metrics(step))
        qtbot.wait(20)
    qtbot.wait(DEBOUNCE_MS * 3)
    assert settled(qtbot, window) == scans

    # The RunManager's watcher hands on a batch: metrics alone change nothing; a status does.
    window.runs.events.emit(run_dir, [json.loads(metrics(21))])
    qtbot.wait(DEBOUNCE_MS * 3)
    assert settled(qtbot, window) == scans
    window.runs.events.emit(run_dir, [json.loads(metrics(22)), {"type": "status", "state": "done"}])
    qtbot.waitUntil(lambda: window.workspace_model.scans > scans, timeout=10000)
    scans = settled(qtbot, window)
    window.runs.events.emit(run_dir, [{"type": "checkpoint", "step": 22}])
    qtbot.waitUntil(lambda: window.workspace_model.scans > scans, timeout=10000)
    scans = settled(qtbot, window)

    # Structure still counts, whoever made it: a checkpoint folder, a new run folder.
    (run_dir / "checkpoints" / "checkpoint-22").mkdir(parents=True)
    qtbot.waitUntil(lambda: window.workspace_model.scans > scans, timeout=10000)
    scans = settled(qtbot, window)
    (project / "runs" / "run-2").mkdir()
    qtbot.waitUntil(lambda: len(window.workspace_model.project(project).runs) == 2, timeout=10000)
