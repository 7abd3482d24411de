"""The Chat tab defaults to the newest run against the base model, in a real window, until the user picks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from engine.runs.names import write_run_name
from engine.workspace import Workspace


def copy_run(source: Path, target: Path, later_by: float = 0.0) -> Path:
    """A copy of a run whose events happened `later_by` seconds later (runs are listed newest first)."""
    shutil.copytree(source, target)
    events = target / "events.jsonl"
    lines = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines() if line.strip()]
    for event in lines:
        if isinstance(event.get("time"), int | float):
            event["time"] += later_by
    events.write_text("".join(json.dumps(e) + "\n" for e in lines), encoding="utf-8")
    return target


def open_chat(make_window, qtbot, project: Path):
    window = make_window()
    window.browser.select_project(project)
    window.pages.setCurrentWidget(window.chat_page)
    qtbot.waitUntil(lambda: window.chat_page.project is not None, timeout=10000)
    return window, window.chat_page


def choices(side) -> list[str]:
    return [side.adapter.itemText(i) for i in range(side.adapter.count())]


def test_a_run_that_finishes_becomes_the_default_against_the_base(make_window, home, short_run, qtbot):
    project = Workspace(home).create_project("Chatting")
    window, page = open_chat(make_window, qtbot, project)
    page.compare.setChecked(True)
    tuned, base = page.sides
    assert tuned.adapter.currentData() is None and base.adapter.currentData() is None  # nothing trained yet

    # A run finishes while the window is open (the demo run): the next scan makes it the default.
    run = copy_run(short_run, project / "runs" / "run-20261206-212735")
    write_run_name(run, "Quick test · lr 3e-4")
    window.workspace_model.refresh()
    qtbot.waitUntil(lambda: tuned.adapter.currentData() == str(run / "adapter"), timeout=10000)
    assert base.adapter.currentData() is None
    assert tuned.adapter.currentText() == "Quick test · lr 3e-4: final adapter"  # the display name
    assert "Quick test · lr 3e-4: checkpoint step 4" in choices(base)

    # A newer run takes over the default; one still training does not.
    newer = copy_run(short_run, project / "runs" / "run-2", later_by=3600)
    window.workspace_model.refresh()
    qtbot.waitUntil(lambda: tuned.adapter.currentData() == str(newer / "adapter"), timeout=10000)
    training = copy_run(short_run, project / "runs" / "run-3", later_by=7200)
    shutil.rmtree(training / "adapter")
    with open(training / "events.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"type": "status", "time": 1e10, "state": "training", "step": 8}) + "\n")
    window.workspace_model.refresh()
    qtbot.waitUntil(lambda: "run-3: checkpoint step 8" in choices(tuned), timeout=10000)
    assert tuned.adapter.currentData() == str(newer / "adapter")  # an interrupted run has no result to try


def test_the_users_own_choice_is_never_replaced(make_window, home, short_run, qtbot):
    project = Workspace(home).create_project("Picking")
    copy_run(short_run, project / "runs" / "run-1")
    window, page = open_chat(make_window, qtbot, project)
    tuned, base = page.sides
    qtbot.waitUntil(
        lambda: tuned.adapter.currentData() == str(project / "runs" / "run-1" / "adapter"), timeout=10000
    )
    # The user picks the base model on the left and a checkpoint on the right.
    tuned.adapter.setCurrentIndex(0)
    tuned.adapter.activated.emit(0)
    step4 = base.adapter.findText("run-1: checkpoint step 4")
    base.adapter.setCurrentIndex(step4)
    base.adapter.activated.emit(step4)

    copy_run(short_run, project / "runs" / "run-2", later_by=3600)
    scans = window.workspace_model.scans
    window.workspace_model.refresh()
    qtbot.waitUntil(
        lambda: window.workspace_model.scans > scans and "run-2: final adapter" in choices(tuned),
        timeout=10000,
    )
    assert tuned.adapter.currentData() is None
    assert base.adapter.currentText() == "run-1: checkpoint step 4"
