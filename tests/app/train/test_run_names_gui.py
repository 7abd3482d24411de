"""Runs have names: suggested at Start from the preset, typed or renamed later, shown in every list."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from testkit.engine_helpers import tiny_config

from app.train.page import TrainPage
from engine.runs.names import read_run_name, write_run_name
from engine.workspace import Workspace, save_project_config


@pytest.fixture
def naming_project(home, tiny_model_dir, facts_file) -> Path:
    project = Workspace(home).create_project("Naming")
    data = project / "datasets" / "facts.jsonl"
    shutil.copy(facts_file, data)
    save_project_config(project, tiny_config(tiny_model_dir, data, training__batch_size=2))
    return project


def edit(editor, text: str) -> None:
    editor.setText(text)
    editor.textEdited.emit(text)


def browser_texts(window) -> list[str]:
    texts = []

    def walk(parent) -> None:
        for row in range(parent.rowCount()):
            texts.append(parent.child(row, 0).text())
            walk(parent.child(row, 0))

    walk(window.browser.model.invisibleRootItem())
    return texts


@pytest.mark.slow  # starts a real engine process
def test_start_names_the_run_from_the_preset_and_what_differs(make_window, naming_project, qtbot):
    window = make_window()
    window.browser.select_project(naming_project)
    window.pages.setCurrentWidget(window.train_page)
    page, setup = window.train_page, window.train_page.setup
    qtbot.waitUntil(lambda: setup.project is not None and setup.start_button.isEnabled(), timeout=10000)
    setup.preset.setCurrentIndex(1)
    setup.preset.activated.emit(1)  # "Quick test"
    assert setup.run_name.placeholderText() == "Quick test"
    edit(setup.form.editors["training.learning_rate"], "3e-4")
    edit(setup.form.editors["training.max_steps"], "4")
    assert setup.run_name.placeholderText() == "Quick test · 4 steps · lr 3e-4"

    # A typed name that cannot be stored stops Start with the reason; a good one is used as typed.
    edit(setup.run_name, "evil\u202etxt")
    assert not setup.start_button.isEnabled() and "text-direction" in setup.top_errors.text()
    edit(setup.run_name, "")
    assert setup.start_button.isEnabled() and setup.chosen_run_name() == "Quick test · 4 steps · lr 3e-4"

    with qtbot.waitSignal(window.runs.finished, timeout=120000) as ended:
        setup.start_button.click()
    assert ended.args[1] == "done", ended.args  # the engine accepts the folder that holds the name
    run_dir = ended.args[0]
    assert run_dir.name.startswith("run-") and read_run_name(run_dir) == "Quick test · 4 steps · lr 3e-4"
    assert page.runs_list.item(1).text().startswith("Quick test · 4 steps · lr 3e-4\n")
    assert page.monitor.title.text() == "Quick test · 4 steps · lr 3e-4"
    qtbot.waitUntil(lambda: "Quick test · 4 steps · lr 3e-4" in browser_texts(window), timeout=10000)
    assert setup.run_name.text() == ""  # the next run gets a fresh suggestion


def test_rename_from_the_runs_list_and_the_browser_keeps_the_folder(
    make_window, project_with_run, short_run, qtbot, monkeypatch, dialogs
):
    run_dir = project_with_run / "runs" / "run-1"
    shutil.copytree(short_run, project_with_run / "runs" / "run-2")
    write_run_name(project_with_run / "runs" / "run-2", "Other")
    answers = ["  Fast lr  ", "Third", "bad\nname"]
    monkeypatch.setattr(TrainPage, "ask_text", lambda self, *a: answers.pop(0))
    window = make_window()
    window.browser.select_project(project_with_run)
    window.pages.setCurrentWidget(window.train_page)
    page = window.train_page
    qtbot.waitUntil(lambda: page.runs_list.count() == 3, timeout=10000)
    page.select_run(run_dir)

    # The runs list's menu: the list, the monitor, the browser and the compare view show the new name.
    page.run_menu(run_dir).actions()[0].trigger()
    assert read_run_name(run_dir) == "Fast lr" and run_dir.is_dir() and (run_dir / "adapter").is_dir()
    assert any(page.runs_list.item(i).text().startswith("Fast lr\n") for i in range(3))
    qtbot.waitUntil(lambda: "Fast lr" in browser_texts(window), timeout=10000)
    qtbot.waitUntil(lambda: page.monitor.run_dir == run_dir, timeout=15000)
    assert page.monitor.title.text() == "Fast lr"
    page.runs_list.selectAll()
    dialog = page.compare_selected()
    qtbot.waitUntil(lambda: not dialog.is_loading(), timeout=10000)
    assert sorted(dialog.curve_names()) == ["Fast lr", "Other"]
    dialog.close()

    # F2 on a run in the project browser renames the run, not the project.
    item = window.browser._find(str(run_dir))
    window.browser.tree.setCurrentIndex(item.index())
    window.activateWindow()
    window.browser.tree.setFocus()
    qtbot.waitUntil(window.browser.tree.hasFocus, timeout=5000)
    window.rename_action.trigger()
    assert read_run_name(run_dir) == "Third"
    assert window.workspace_model.project(project_with_run).name == "Exporting"

    # A bad name: one clear message, the stored name kept.
    page.rename_run(run_dir)
    assert dialogs.warnings[-1].startswith("A run name cannot contain line breaks")
    assert read_run_name(run_dir) == "Third"
