"""A finished run shows its next steps in the Train tab: chat with it (Chat tab, against the base)
and export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PySide6.QtWidgets import QApplication


def open_run(make_window, qtbot, project: Path, run_dir: Path):
    window = make_window()
    window.browser.select_project(project)
    window.pages.setCurrentWidget(window.train_page)
    page = window.train_page
    qtbot.waitUntil(lambda: page.runs_list.count() >= 2, timeout=10000)
    page.select_run(run_dir)
    qtbot.waitUntil(
        lambda: page.stack.currentWidget() is page.monitor and page.monitor.run_dir == run_dir, timeout=15000
    )
    return window, page


def stopped_copy(short_run: Path, target: Path) -> Path:
    """A run stopped at its checkpoint of step 8: no final adapter, a checkpoint to try."""
    shutil.copytree(short_run, target)
    shutil.rmtree(target / "adapter")
    with open(target / "events.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"type": "status", "time": 1.0, "state": "stopped", "step": 8}) + "\n")
    return target


def test_a_done_run_offers_chat_with_it_export_and_evaluate(make_window, project_with_run, qtbot):
    run_dir = project_with_run / "runs" / "run-1"
    window, page = open_run(make_window, qtbot, project_with_run, run_dir)
    steps = page.next_steps
    assert steps.isVisible() and "done" in steps.headline.text()
    assert list(steps.buttons) == ["Chat with it", "Export…", "Evaluate"]
    assert all(button.isEnabled() for button in steps.buttons.values())

    # Chat with it: the Chat tab, compare mode, this run's adapter on the left and the base on the right.
    steps.chat_button.click()
    chat = window.chat_page
    assert window.pages.currentWidget() is chat
    assert chat.compare.isChecked()
    assert chat.sides[0].adapter.currentData() == str(run_dir / "adapter")
    assert chat.sides[1].adapter.currentData() is None
    assert chat.sides[0].picked and chat.sides[1].picked  # a rescan keeps this choice

    # Export…: the export dialog for this run.
    window.pages.setCurrentWidget(page)
    steps.export_button.click()
    from app.export.dialog import ExportDialog

    dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, ExportDialog) and w.isVisible()]
    assert len(dialogs) == 1 and dialogs[0].source == run_dir and dialogs[0].project == project_with_run
    dialogs[0].close()


def test_a_stopped_run_chats_from_its_last_checkpoint_and_a_running_one_shows_no_steps(
    make_window, project_with_run, short_run, qtbot
):
    stopped = stopped_copy(short_run, project_with_run / "runs" / "run-2")
    window, page = open_run(make_window, qtbot, project_with_run, stopped)
    steps = page.next_steps
    assert steps.isVisible() and "Stopped" in steps.headline.text()
    steps.chat_button.click()
    assert window.chat_page.sides[0].adapter.currentData() == str(stopped / "checkpoints" / "checkpoint-8")

    # While a run trains (the Train tab follows it) there is nothing to try yet.
    window.pages.setCurrentWidget(page)
    page.next_steps.show_for(stopped, "running", True)
    assert not steps.isVisible()
    page.select_run(project_with_run / "runs" / "run-1")
    assert steps.isVisible() and steps.run_dir == project_with_run / "runs" / "run-1"
    page.select_run(None)  # the new-run setup
    assert not steps.isVisible()


def test_the_runs_list_menu_offers_the_same_steps(make_window, project_with_run, qtbot):
    run_dir = project_with_run / "runs" / "run-1"
    window, page = open_run(make_window, qtbot, project_with_run, run_dir)
    menu = page.run_menu(run_dir)
    assert [a.text() for a in menu.actions()] == ["Rename…", "Chat with it", "Export…", "Evaluate"]
    with qtbot.waitSignal(page.chatRequested) as requested:
        menu.actions()[1].trigger()
    assert requested.args == [run_dir]
    assert window.pages.currentWidget() is window.chat_page


def test_resume_offers_the_newest_checkpoint_after_a_pause_and_keeps_an_earlier_pick(qtbot):
    """Seen in a real window: paused at step 61, Resume went back to step 50 and removed 60 and 61."""
    from app.train.monitor import RunMonitor
    from app.train.run_manager import RunManager

    monitor = RunMonitor(RunManager())
    qtbot.addWidget(monitor)
    monitor._show_checkpoints([15, 30, 50])  # while training
    assert monitor.checkpoint.currentData() == 50
    monitor._show_checkpoints([15, 30, 50, 60, 61])  # paused: a checkpoint of step 61 was saved
    assert (
        monitor.checkpoint.currentData() == 61 and monitor.checkpoint.currentText() == "from step 61 (latest)"
    )
    monitor.checkpoint.setCurrentIndex(monitor.checkpoint.findData(30))  # the user branches on purpose
    monitor._show_checkpoints([15, 30, 50, 60, 61, 75])
    assert monitor.checkpoint.currentData() == 30


def test_a_long_run_name_does_not_widen_the_monitor_and_an_empty_message_leaves_no_gap(
    make_window, project_with_run, qtbot
):
    run_dir = project_with_run / "runs" / "run-1"
    window, page = open_run(make_window, qtbot, project_with_run, run_dir)
    monitor = page.monitor
    width = monitor.minimumSizeHint().width()
    monitor.title.setText("A run name far longer than the monitor is wide " * 6)
    assert monitor.minimumSizeHint().width() == width  # it was the title's whole width before
    assert not monitor.message.isVisible()  # a done run has nothing to say under its controls
    monitor.set_state("failed", "The run failed. Try again.")
    assert monitor.message.isVisible() and "Try again" in monitor.message.text()


def failed_copy(short_run: Path, target: Path, kind: str) -> Path:
    """A run that failed at step 8 with an error of `kind`, its checkpoint of step 8 kept."""
    shutil.copytree(short_run, target)
    shutil.rmtree(target / "adapter")
    with open(target / "events.jsonl", "a", encoding="utf-8") as handle:
        error = {"type": "error", "time": 1.0, "kind": kind, "message": "It failed.", "hint": "Try again."}
        handle.write(json.dumps(error) + "\n")
        handle.write(json.dumps({"type": "status", "time": 1.0, "state": "failed", "step": 8}) + "\n")
    return target


def test_a_diverged_run_is_not_offered_resume_and_says_why(make_window, project_with_run, short_run, qtbot):
    diverged = failed_copy(short_run, project_with_run / "runs" / "run-2", "diverged")
    oom = failed_copy(short_run, project_with_run / "runs" / "run-3", "oom")
    window, page = open_run(make_window, qtbot, project_with_run, diverged)
    monitor = page.monitor
    assert monitor.state == "failed" and monitor.checkpoints  # a checkpoint from before the NaN
    assert not monitor.resume_button.isEnabled()
    assert "repeat the same steps" in monitor.resume_button.toolTip()
    monitor.set_state("failed", "It failed. Try again.")  # as the RunManager reports a run it launched
    assert not monitor.resume_button.isEnabled()
    page.select_run(oom)  # out of memory: resuming with more memory free is a fair try
    qtbot.waitUntil(lambda: monitor.run_dir == oom and monitor.state == "failed", timeout=15000)
    assert monitor.resume_button.isEnabled() and "repeat" not in monitor.resume_button.toolTip()
