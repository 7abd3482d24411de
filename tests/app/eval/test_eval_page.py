"""The Evaluate tab: past reports shown on show_project, the engine command, progress, done and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.eval import page as page_module
from app.eval.page import EvalPage
from app.widgets.theme import WORSE_COLOR
from engine.workspace import Workspace


@pytest.fixture
def project(home, tmp_path, write_run, make_report):
    """A project with a base model, a facts eval set and one finished run holding a report."""
    workspace = Workspace(home)
    path = workspace.create_project("Evaluating", model=str(tmp_path / "no-such-model"))
    (path / "eval-sets").mkdir()
    (path / "eval-sets" / "facts.jsonl").write_text('{"prompt": "2+2?", "expected": "4"}\n', encoding="utf-8")
    run = write_run(path / "runs" / "run-1", {10: 1.5, 20: 1.1}, checkpoints=[10, 20])
    (run / "evals").mkdir()
    (run / "evals" / "20261207-013000.json").write_text(json.dumps(make_report(run)), encoding="utf-8")
    return workspace, path


def make_page(qtbot) -> EvalPage:
    page = EvalPage()
    qtbot.addWidget(page)
    page.resize(1400, 860)
    return page


def test_show_project_lists_and_shows_the_runs_report(qtbot, project, make_report):
    workspace, path = project
    run = path / "runs" / "run-1"
    # The same evaluation, also written to PROJECT/evals: listed once, as the project's copy.
    (path / "evals").mkdir()
    (path / "evals" / "x.json").write_text(json.dumps(make_report(run)), encoding="utf-8")
    page = make_page(qtbot)
    page.show_project(workspace.summarize(path))
    assert page.reports.count() == 1
    assert (
        "Quick test" in page.reports.item(0).text()
        and "facts 100% · general −11 pts" in page.reports.item(0).text()
    )
    assert page.report_path == path / "evals" / "x.json"
    assert page.scorecard.cell_text("set:facts", 1) == "100%"
    assert page.items.source.currentText() == "facts"
    assert page.chart.run_dir == run and page.chart.best[:2] == (20, 1.1)
    assert page.runs.checked() == [run]  # the newest finished run is ticked
    assert "facts" in page.sets_label.text()


def test_evaluate_runs_the_engine_with_base_runs_sets_and_probe(qtbot, project, monkeypatch):
    workspace, path = project
    started = []

    class FakeProcess(page_module.EngineProcess):
        def start(self) -> None:
            started.append(self.args)

        def is_running(self) -> bool:
            return bool(started)

    monkeypatch.setattr(page_module, "EngineProcess", FakeProcess)
    page = make_page(qtbot)
    page.show_project(workspace.summarize(path))
    run, checkpoint = path / "runs" / "run-1", path / "runs" / "run-1" / "checkpoints" / "checkpoint-10"
    assert page.evaluate_runs([run, checkpoint])
    args = started[0]
    assert args[:3] == ["eval", "--model", str(Path(args[2]))] and args[2].endswith("no-such-model")
    assert args[3:7] == ["--adapter", str(run), "--adapter", str(checkpoint)]
    assert args[7:9] == ["--set", str(path / "eval-sets" / "facts.jsonl")]
    assert args[9:15] == ["--probe", "forgetting", "--probe", "bias", "--progress-json", "--output"]
    assert Path(args[15]).parent == path / "evals" and args[15].endswith(".json")
    assert page.cancel_button.isEnabled() and not page.evaluate_button.isEnabled()
    assert page.evaluate_runs([run])  # busy: queued for when this one ends
    assert page._queue == [[run]]


def test_progress_done_and_error_lines_show_in_the_page(qtbot, project, make_report):
    workspace, path = project
    page = make_page(qtbot)
    page.show_project(workspace.summarize(path))
    page.on_message({"progress": 0.4, "message": "Scoring facts (2/5)"})
    assert page.progress.value() == 40 and "Scoring facts" in page.status.text()

    new = path / "evals" / "20261207-020000.json"
    new.parent.mkdir()
    new.write_text(
        json.dumps(
            make_report(path / "runs" / "run-1", label="Second look", created="2026-12-07T02:00:00+00:00")
        ),
        encoding="utf-8",
    )
    page.on_message({"done": str(new)})
    with qtbot.waitSignal(page.reportReady) as ready:
        page.on_ended(0, "")
    assert ready.args == [str(new)]
    assert (
        page.report_path == new
        and page.scorecard.table.headerData(1, Qt.Orientation.Horizontal) == "Second look"
    )
    assert page.reports.count() == 2 and page.reports.currentRow() == 0

    page.on_message({"progress": 0.1, "message": "Loading"})
    page.on_ended(2, "error: The model folder /x does not exist. Choose a model in the Train tab.")
    assert "The model folder /x does not exist." in page.status.text() and WORSE_COLOR in page.status.text()
    assert page.report_path == new  # the last report stays on screen
    page.on_ended(-1, "")
    assert "cancelled" in page.status.text()


def test_a_failing_engine_shows_its_error_line_not_a_dialog(qtbot, project):
    """A real child process: the base model folder does not exist (or, before the eval command
    exists, the engine rejects the command); either way one line in the page."""
    workspace, path = project
    page = make_page(qtbot)
    page.show_project(workspace.summarize(path))
    assert page.evaluate_runs(page.runs.checked())
    qtbot.waitUntil(lambda: not page.is_running(), timeout=60000)
    assert WORSE_COLOR in page.status.text() and len(page.status.text()) > 40
    assert page.evaluate_button.isEnabled() and not page.cancel_button.isEnabled()


def test_run_picker_lists_checkpoints_and_keeps_ticks_across_rescans(qtbot, project, write_run):
    workspace, path = project
    write_run(path / "runs" / "run-0", {}, checkpoints=[5], adapter=False)  # stopped early: checkpoints only
    page = make_page(qtbot)
    page.show_project(workspace.summarize(path))
    tops = {page.runs.topLevelItem(i).text(0).split("\n")[0]: page.runs.topLevelItem(i) for i in range(2)}
    assert [tops["run-1"].child(i).text(0) for i in range(2)] == [  # newest first (no best.json)
        "checkpoint · step 20",
        "checkpoint · step 10",
    ]
    assert not tops["run-0"].flags() & Qt.ItemFlag.ItemIsUserCheckable  # no final adapter to tick
    checkpoint = path / "runs" / "run-0" / "checkpoints" / "checkpoint-5"
    page.runs.set_checked([checkpoint])
    page.show_project(workspace.summarize(path))  # a workspace rescan of the same project
    assert page.runs.checked() == [checkpoint]


def test_a_project_without_a_base_model_says_so_in_the_page(qtbot, home):
    workspace = Workspace(home)
    path = workspace.create_project("No model yet")
    page = make_page(qtbot)
    page.show_project(workspace.summarize(path))
    assert not page.evaluate_runs([])
    assert "no base model" in page.status.text() and page.process is None


@pytest.mark.slow
def test_scorecard_fills_from_a_real_evaluation_of_the_tiny_model(qtbot, home, tiny_model_dir, short_run):
    """The whole path: the page starts `whetstone-engine eval` on a run, follows its progress and
    shows the report it wrote, base and run side by side."""
    import shutil

    workspace = Workspace(home)
    path = workspace.create_project("Tiny eval", model=str(tiny_model_dir))
    shutil.copytree(short_run, path / "runs" / "run-1")
    (path / "eval-sets").mkdir()
    (path / "eval-sets" / "facts.jsonl").write_text(
        '{"prompt": "How many legs has a cat?", "expected": 4, "scorer": "number"}\n'
        '{"prompt": "Say hello.", "expected": "hello", "scorer": "contains"}\n',
        encoding="utf-8",
    )
    page = make_page(qtbot)
    page.max_new_tokens = 4  # short answers: the tiny model's are noise anyway
    page.show_project(workspace.summarize(path))
    assert page.runs.checked() == [path / "runs" / "run-1"]
    messages = []
    with qtbot.waitSignal(page.reportReady, timeout=300000) as ready:
        page.evaluate()
        page.process.message.connect(messages.append)
    report_path = Path(ready.args[0])
    assert report_path.parent == path / "evals"
    assert any("progress" in m for m in messages)
    assert page.scorecard.table.columnCount() == 2
    assert page.scorecard.table.headerData(0, Qt.Orientation.Horizontal) == "Base model"
    assert page.scorecard.cell_text("set:facts", 1).endswith("%")
    assert page.scorecard.row_of("kl") >= 0 and page.scorecard.cell_text("kl", 0) == "—"  # the reference
    assert float(page.scorecard.cell_text("kl", 1)) >= 0.0  # the run's own, measured against the base
    assert page.reports.count() == 1  # the run's own copy of the report is not listed twice
    assert page.items.source.count() == 2


def test_a_project_without_runs_says_evaluate_scores_the_base_model(qtbot, home, tmp_path):
    workspace = Workspace(home)
    path = workspace.create_project("New", model=str(tmp_path / "no-such-model"))
    page = make_page(qtbot)
    page.show_project(workspace.summarize(path))
    assert not page.runs.has_runs() and page.runs.empty_note.isVisibleTo(page)
    assert "No finished runs yet" in page.runs.empty_note.text()
    assert page.runs.checked() == [] and page.runs.current_run() is None
    assert page.evaluate_button.text() == "Evaluate the base model"
    assert "press Evaluate to score the base model" in page.report_title.text()


def test_the_evaluate_button_says_whether_runs_are_ticked(qtbot, project):
    workspace, path = project
    page = make_page(qtbot)
    page.show_project(workspace.summarize(path))
    assert page.runs.has_runs() and not page.runs.empty_note.isVisibleTo(page)
    assert page.evaluate_button.text() == "Evaluate"
    page.runs.set_checked([])
    assert page.evaluate_button.text() == "Evaluate the base model"


def test_the_reports_notes_show_above_the_scorecard(qtbot, project, make_report):
    workspace, path = project
    page = make_page(qtbot)
    page.show_project(workspace.summarize(path))
    assert page.report is not None and not page.report_notes.isVisibleTo(page)  # this report has none
    report = make_report(path / "runs" / "run-1")
    report["notes"] = ["Eval set facts: 2 lines skipped, so they are not in its score (line 2: bad JSON)."]
    (path / "evals").mkdir()
    (path / "evals" / "noted.json").write_text(json.dumps(report), encoding="utf-8")
    assert page.show_report_file(path / "evals" / "noted.json")
    assert page.report_notes.isVisibleTo(page) and "2 lines skipped" in page.report_notes.text()
    page.show_report_file(path / "runs" / "run-1" / "evals" / "20261207-013000.json")
    assert not page.report_notes.isVisibleTo(page)


def test_a_report_shown_while_the_tab_was_hidden_gets_every_scorecard_row_when_shown(qtbot, project):
    workspace, path = project
    page = make_page(qtbot)
    page.show_project(workspace.summarize(path))  # at start-up, on another tab: nothing laid out yet
    page.show()
    qtbot.waitExposed(page)
    qtbot.waitUntil(lambda: page.scorecard.height() >= page.scorecard.preferred_height(), timeout=2000)
