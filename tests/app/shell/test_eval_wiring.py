"""The Evaluate tab in the window: finished runs evaluated when wanted; the Train step opens it."""

from __future__ import annotations

from pathlib import Path


def _window_on(make_window, project: Path, calls: list):
    window = make_window()
    window.browser.select_project(project)
    window.eval_page.evaluate_runs = lambda runs: calls.append(runs) or True
    return window


def test_a_finished_run_is_evaluated_when_the_setting_is_on(make_window, project_with_run, settings):
    calls: list = []
    window = _window_on(make_window, project_with_run, calls)
    run = project_with_run / "runs" / "run-1"
    assert window.eval_page.evaluate_after_runs  # on by default
    window._on_run_finished(run, "failed", "boom")
    window._on_run_finished(run, "done", "")
    assert calls == [[run]]

    window.eval_page.after_runs.setChecked(False)  # the user's choice is kept in the preferences
    assert settings.evaluate_after_runs is False
    window._on_run_finished(run, "done", "")
    assert calls == [[run]]


def test_a_run_of_another_project_is_not_evaluated_in_this_one(make_window, project_with_run, tmp_path):
    calls: list = []
    window = _window_on(make_window, project_with_run, calls)
    window._on_run_finished(tmp_path / "elsewhere" / "runs" / "run-9", "done", "")
    assert calls == []


def test_the_train_tabs_evaluate_step_opens_the_evaluate_tab(make_window, project_with_run):
    calls: list = []
    window = _window_on(make_window, project_with_run, calls)
    run = project_with_run / "runs" / "run-1"
    window.train_page.next_steps.show_for(run, "done", True)
    window.train_page.next_steps.buttons["Evaluate"].click()
    assert window.pages.currentWidget() is window.eval_page and calls == [[run]]
    shortcuts = {a.text().replace("&", ""): a.shortcut().toString() for a in window.actions()}
    assert shortcuts["Evaluate"] == "Ctrl+4"
