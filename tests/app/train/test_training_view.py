"""The Train tab on the tiny model: a real engine process, followed through its run folder."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
from testkit.engine_helpers import tiny_config

from engine.runs.state import summarize_run
from engine.workspace import Workspace, save_project_config


@pytest.fixture
def training_project(home, tiny_model_dir, facts_file) -> Path:
    """A project with the tiny model and the facts data, set up for a long run (stopped by the tests)."""
    project = Workspace(home).create_project("Training")
    data = project / "datasets" / "facts.jsonl"
    shutil.copy(facts_file, data)
    config = tiny_config(
        tiny_model_dir, data, training__max_steps=100000, training__save_every=100000, training__batch_size=2
    )
    save_project_config(project, config)
    return project


def open_train_tab(make_window, project):
    window = make_window()
    window.browser.select_project(project)
    window.pages.setCurrentWidget(window.train_page)
    return window, window.train_page


def loss_steps(page):
    return list(page.monitor.plots.curve_data("loss")[0])


def wait_state(qtbot, page, state, timeout=120000):
    qtbot.waitUntil(lambda: page.monitor.state == state, timeout=timeout)


def test_setup_flags_invalid_settings_in_place_with_the_engines_message(make_window, training_project, qtbot):
    window, page = open_train_tab(make_window, training_project)
    setup = page.setup
    qtbot.waitUntil(lambda: setup.project is not None and setup.start_button.isEnabled(), timeout=10000)
    batch = setup.form.editors["training.batch_size"]
    batch.setText("0")
    batch.textEdited.emit("0")
    assert "training.batch_size = 0 is not allowed" in setup.form.error_labels["training.batch_size"].text()
    assert not setup.start_button.isEnabled() and "1 setting to fix" in setup.top_errors.text()
    batch.setText("2")
    batch.textEdited.emit("2")
    assert setup.start_button.isEnabled() and setup.form.error_labels["training.batch_size"].isHidden()
    assert "Sequences per step" in batch.toolTip()  # the engine's docstring is the tooltip
    setup.preset.setCurrentIndex(1)
    setup.preset.activated.emit(1)  # "Quick test"
    assert setup.config().training.max_steps == 30 and setup.config().data.path.endswith("facts.jsonl")


@pytest.mark.slow  # the window lifecycle story: a real run, two windows, pause, resume, kill
def test_a_run_streams_survives_a_closed_window_pauses_resumes_and_reports_a_kill(
    make_window, training_project, qtbot, monkeypatch
):
    from app.shell.main_window import MainWindow

    window, page = open_train_tab(make_window, training_project)
    qtbot.waitUntil(lambda: page.setup.start_button.isEnabled(), timeout=10000)
    page.setup.start_button.click()
    qtbot.waitUntil(lambda: len(window.runs.active()) == 1, timeout=10000)
    run_dir = window.runs.active()[0]
    assert page.monitor.run_dir == run_dir and page.stack.currentWidget() is page.monitor
    qtbot.waitUntil(lambda: len(loss_steps(page)) >= 2, timeout=120000)  # live points reach the plot
    assert page.monitor.state == "training"

    # Close the window and leave the run going: the engine lives on without the GUI.
    monkeypatch.setattr(MainWindow, "ask_about_running", lambda self, n: "leave")
    window.close()
    reached = summarize_run(run_dir).step or 0
    qtbot.waitUntil(lambda: (summarize_run(run_dir).step or 0) > reached + 1, timeout=60000)
    assert summarize_run(run_dir).state == "running"

    # A new window re-attaches and shows the whole history.
    window, page = open_train_tab(make_window, training_project)
    qtbot.waitUntil(lambda: run_dir in window.runs.active(), timeout=10000)
    page.select_run(run_dir)
    qtbot.waitUntil(lambda: len(loss_steps(page)) >= reached + 2, timeout=30000)
    assert loss_steps(page)[:3] == [1, 2, 3]

    # Pause: a checkpoint, shown as paused, and a notification.
    with qtbot.waitSignal(window.runs.finished, timeout=120000) as ended:
        page.monitor.pause_button.click()
    assert ended.args[1] == "paused"
    wait_state(qtbot, page, "paused")
    assert "checkpoint is saved" in page.monitor.message.text()
    assert window.notifier.last[0].endswith("paused")
    paused_at = summarize_run(run_dir).checkpoints[-1][0]
    assert page.monitor.resume_button.isEnabled()

    # Resume: the curve goes on from the checkpoint, one point per step.
    page.monitor.resume_button.click()
    qtbot.waitUntil(lambda: max(loss_steps(page)) >= paused_at + 2, timeout=120000)
    steps = loss_steps(page)
    assert steps == list(range(1, len(steps) + 1))

    # Kill the engine: the UI says the run was interrupted, never "done".
    pid = int(__import__("json").loads((run_dir / "engine.pid").read_text())["pid"])
    with qtbot.waitSignal(window.runs.finished, timeout=30000) as ended:
        os.kill(pid, signal.SIGKILL)
    assert ended.args[1] == "interrupted"
    wait_state(qtbot, page, "interrupted")
    assert "killed or crashed" in page.monitor.message.text()
    assert window.notifier.last[2] is False
    assert summarize_run(run_dir).state == "interrupted"


@pytest.mark.slow  # real training steps in an engine process
def test_check_fit_runs_real_steps_in_an_engine_process_and_shows_the_result(
    make_window, training_project, qtbot
):
    window, page = open_train_tab(make_window, training_project)
    setup = page.setup
    qtbot.waitUntil(
        lambda: "Estimated GPU memory" in setup.estimate_label.text(), timeout=10000
    )  # arithmetic only
    assert "LoRA adapter" in setup.estimate_label.text()
    setup.fit_button.click()
    qtbot.waitUntil(lambda: setup._fit is None and bool(setup.fit_label.text()), timeout=120000)
    text = setup.fit_label.text()
    assert "Fits" in text and "tokens/s" in text and "Process peak (RAM)" in text, text
    assert setup.fit_button.isEnabled()


@pytest.mark.slow  # trains further in an engine process
def test_train_further_and_compare_from_the_runs_list(make_window, training_project, short_run, qtbot):
    for name in ("run-1", "run-2"):
        shutil.copytree(short_run, training_project / "runs" / name)
    window, page = open_train_tab(make_window, training_project)
    qtbot.waitUntil(lambda: page.runs_list.count() == 3, timeout=10000)
    page.select_run(training_project / "runs" / "run-1")
    monitor = page.monitor
    qtbot.waitUntil(lambda: len(loss_steps(page)) == 8, timeout=10000)
    assert monitor.state == "done" and monitor.further_button.isEnabled()
    assert not monitor.resume_button.isEnabled()  # from the latest checkpoint a finished run trains further

    page.runs_list.selectAll()
    dialog = page.compare_selected()
    qtbot.waitUntil(lambda: not dialog.is_loading(), timeout=10000)
    assert sorted(dialog.curve_names()) == ["run-1", "run-2"]
    dialog.close()

    page.select_run(training_project / "runs" / "run-1")
    monitor.more_steps.setValue(3)
    with qtbot.waitSignal(window.runs.finished, timeout=120000) as ended:
        monitor.further_button.click()
    assert ended.args[1] == "done"
    qtbot.waitUntil(lambda: max(loss_steps(page)) == 11, timeout=10000)
    assert loss_steps(page) == list(range(1, 12))  # the curve went on from step 8


def test_train_on_a_cluster_writes_the_bundle_from_the_setup(make_window, training_project, qtbot):
    import json

    window, page = open_train_tab(make_window, training_project)
    setup = page.setup
    qtbot.waitUntil(lambda: setup.cluster_button.isEnabled(), timeout=10000)
    dialog = setup.open_cluster_bundle()
    assert Path(dialog.folder.text()) == training_project / "exports" / "cluster-training"
    dialog.gpus.setValue(4)
    assert "with 8 GPUs (2 × 4) each step trains 16 rows instead of 2" in dialog.batch_note.text()
    dialog.write_button.click()
    qtbot.waitUntil(lambda: dialog.show_button.isVisible(), timeout=60000)
    bundle = training_project / "exports" / "cluster-training"
    assert "launch-torchrun.sh" in dialog.status.text()
    info = json.loads((bundle / "bundle.json").read_text())
    assert info["name"] == "training" and (bundle / "data" / "facts.jsonl").is_file()
    assert "#SBATCH --gpus-per-node=4" in (bundle / "slurm-job.sh").read_text()
    assert "RUN_DIR:-$BUNDLE/runs/training" in (bundle / "train-env.sh").read_text()

    dialog.write_button.click()  # the folder is now taken: the engine's message, nothing overwritten
    qtbot.waitUntil(lambda: "already exists and is not empty" in dialog.status.text(), timeout=60000)
    assert dialog.write_button.isEnabled()
