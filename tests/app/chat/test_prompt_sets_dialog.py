"""The prompt-sets dialog edits eval sets (issue 20): expected answers and scorers in the grid,
replies coloured passed/failed, older .toml sets converted on save. No model needed."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from PySide6.QtCore import Qt

from app.widgets.theme import BETTER_COLOR, WORSE_COLOR
from engine.chat.prompt_sets import load_prompt_set
from engine.chat.store import save_prompt_set_results

BASE, TUNED = "Base model (no adapter)", "run-1: final adapter"


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "prompt-sets"
    folder.mkdir()
    (folder / "facts.toml").write_text(
        'format = 1\nname = "Facts"\nsystem = "Be brief."\n'
        'prompts = ["Capital of Zorvania?", "Line one\\nline two"]\n',
        encoding="utf-8",
    )
    for label, replies in ((BASE, ["I do not know.", "ok"]), (TUNED, ["It is Quillhaven.", "ok"])):
        prompts = ["Capital of Zorvania?", "Line one\nline two"]
        results = [{"prompt": p, "reply": r} for p, r in zip(prompts, replies, strict=True)]
        save_prompt_set_results(tmp_path, "facts", label, results)
    return tmp_path


def open_dialog(qtbot, project):
    from app.chat.prompt_sets import PromptSetsDialog

    dialog = PromptSetsDialog(SimpleNamespace(project=SimpleNamespace(path=project)))
    qtbot.addWidget(dialog)
    dialog.sets.setCurrentRow(0)
    return dialog


def colour(dialog, row, label):
    for column in range(dialog.grid.columnCount()):
        if dialog.grid.horizontalHeaderItem(column).text() == label:
            brush = dialog.grid.item(row, column).data(Qt.ItemDataRole.ForegroundRole)
            return brush.color().name() if brush is not None else None
    raise KeyError(label)


def test_expected_answers_and_scorers_are_edited_scored_and_saved(qtbot, project):
    dialog = open_dialog(qtbot, project)
    assert "older set" in dialog.state.text()
    assert dialog.prompts.toPlainText().splitlines() == ["Capital of Zorvania?", "Line one \u23ce line two"]
    headers = [dialog.grid.horizontalHeaderItem(c).text() for c in range(dialog.grid.columnCount())]
    assert headers == ["Prompt", "Expected", "Scorer", BASE, TUNED]
    assert colour(dialog, 0, TUNED) is None  # nothing to check yet

    dialog.grid.item(0, 1).setText("Quillhaven")  # typing an answer turns scoring on
    assert dialog.grid.cellWidget(0, 2).currentData() == "exact"
    assert colour(dialog, 0, TUNED) == colour(dialog, 0, BASE) == WORSE_COLOR.lower()  # not exact
    box = dialog.grid.cellWidget(0, 2)
    box.setCurrentIndex(box.findData("contains"))
    assert colour(dialog, 0, TUNED) == BETTER_COLOR.lower() and colour(dialog, 0, BASE) == WORSE_COLOR.lower()
    assert f"{TUNED}: 1 of 1 passed" in dialog.summary.text() and f"{BASE}: 0 of 1" in dialog.summary.text()

    assert dialog.save_set()
    folder = project / "prompt-sets"
    assert sorted(p.name for p in folder.glob("facts.*")) == ["facts.jsonl"]  # converted
    lines = [json.loads(line) for line in (folder / "facts.jsonl").read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {
            "prompt": "Capital of Zorvania?",
            "system": "Be brief.",
            "expected": "Quillhaven",
            "scorer": "contains",
        },
        {"prompt": "Line one\nline two", "system": "Be brief."},  # the line break survives the editor
    ]

    reopened = open_dialog(qtbot, project)
    assert reopened.grid.item(0, 1).text() == "Quillhaven"
    assert reopened.grid.cellWidget(0, 2).currentData() == "contains"
    assert colour(reopened, 0, TUNED) == BETTER_COLOR.lower()


def test_prompts_edited_in_place_keep_their_answers(qtbot, project):
    dialog = open_dialog(qtbot, project)
    dialog.grid.item(0, 1).setText("Quillhaven")
    assert dialog.save_set()
    text = dialog.prompts.toPlainText().replace("Capital of Zorvania?", "Capital city of Zorvania?")
    dialog.prompts.setPlainText("2 + 2?\n" + text)  # a new prompt first, and the first one reworded
    dialog.system.setText("")  # the system prompt removed from every prompt
    assert dialog.save_set()
    saved = load_prompt_set(project, "facts")
    assert saved.prompts == ["2 + 2?", "Capital city of Zorvania?", "Line one\nline two"]
    assert [item.expected for item in saved.items] == [None, "Quillhaven", None]
    assert all(item.system is None for item in saved.items)


def test_a_new_prompt_gets_the_sets_system_prompt(qtbot, project):
    dialog = open_dialog(qtbot, project)
    dialog.prompts.setPlainText(dialog.prompts.toPlainText() + "\nA new one?")
    assert dialog.save_set()
    saved = load_prompt_set(project, "facts")
    assert saved.prompts[-1] == "A new one?" and {item.system for item in saved.items} == {"Be brief."}


def test_a_bad_expected_answer_is_not_saved(qtbot, project):
    dialog = open_dialog(qtbot, project)
    box = dialog.grid.cellWidget(0, 2)
    box.setCurrentIndex(box.findData("json"))
    dialog.grid.item(0, 1).setText("{not json")
    assert "not valid JSON" in dialog.summary.text()
    assert not dialog.save_set()
    assert dialog.state.text().startswith("Not saved:") and "not valid JSON" in dialog.state.text()
    assert (project / "prompt-sets" / "facts.toml").exists()  # nothing written
    box.setCurrentIndex(box.findData(None))  # not scored: the answer is cleared
    assert dialog.grid.item(0, 1).text() == "" and dialog.save_set()


def test_new_set_is_named_by_its_file(qtbot, tmp_path):
    from app.chat.prompt_sets import PromptSetsDialog

    dialog = PromptSetsDialog(SimpleNamespace(project=SimpleNamespace(path=tmp_path)))
    qtbot.addWidget(dialog)
    dialog.name.setText("Regression checks")
    dialog.prompts.setPlainText("Hi\n\nBye\n")
    assert dialog.save_set()
    assert dialog.name.text() == "regression-checks"
    assert load_prompt_set(tmp_path, "regression-checks").prompts == ["Hi", "Bye"]
    assert dialog.sets.count() == 1 and dialog.sets.item(0).text() == "regression-checks (2)"
