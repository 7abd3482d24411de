"""The setup screen's guards against overfitting: automatic validation, the new settings, the warnings."""

from __future__ import annotations

import shutil

from testkit.engine_helpers import tiny_config
from testkit.tiny_model import fact_rows, write_jsonl

from app.train.setup import AUTO_VALIDATION, NO_VALIDATION
from engine.workspace import Workspace, save_project_config


def open_setup(make_window, project, qtbot):
    window = make_window()
    window.browser.select_project(project)
    window.pages.setCurrentWidget(window.train_page)
    setup = window.train_page.setup
    qtbot.waitUntil(lambda: setup.project is not None and setup.start_button.isEnabled(), timeout=10000)
    return setup


def choose_validation(setup, text: str) -> None:
    index = setup.validation.findText(text)
    setup.validation.setCurrentIndex(index)
    setup.validation.activated.emit(index)


def test_setup_offers_automatic_validation_and_shows_the_engines_warnings(
    make_window, home, tiny_model_dir, facts_file, qtbot
):
    project = Workspace(home).create_project("Guards")
    data = project / "datasets" / "facts.jsonl"
    shutil.copy(facts_file, data)  # 12 rows: too few to hold any out automatically
    save_project_config(project, tiny_config(tiny_model_dir, data, training__max_steps=60))
    setup = open_setup(make_window, project, qtbot)

    assert setup.validation.currentText() == AUTO_VALIDATION
    assert setup.config().data.validation_ratio == "auto"
    assert setup.config().data.validation_path == ""
    qtbot.waitUntil(lambda: not setup.warnings_label.isHidden(), timeout=10000)
    text = setup.warnings_label.text()
    assert "Before you start" in text and "about 20.0 epochs" in text  # 60 steps × batch 4 ÷ 12 rows
    assert "fewer than the 40" in text and "training.learning_rate = 3e-3" in text

    choose_validation(setup, NO_VALIDATION)
    assert setup.config().data.validation_ratio == 0.0
    qtbot.waitUntil(lambda: "validation is off" in setup.warnings_label.text(), timeout=10000)

    # More rows (the file changed on disk) and a sane learning rate and step count: no warning left.
    write_jsonl(data, fact_rows(repeat=40))  # 120 rows, 12 held out
    choose_validation(setup, AUTO_VALIDATION)
    for name, value in (("training.learning_rate", "0.0002"), ("training.max_steps", "20")):
        editor = setup.form.editors[name]
        editor.setText(value)
        editor.textEdited.emit(value)
    qtbot.waitUntil(lambda: setup.warnings_label.isHidden(), timeout=10000)


def test_the_new_settings_are_in_the_form_with_their_help_and_checks(
    make_window, home, tiny_model_dir, qtbot
):
    project = Workspace(home).create_project("Settings")
    data = write_jsonl(project / "datasets" / "facts.jsonl", fact_rows())
    config = tiny_config(tiny_model_dir, data).with_overrides(
        {"data.validation_ratio": 0.0}
    )  # an old project
    save_project_config(project, config)
    setup = open_setup(make_window, project, qtbot)
    assert setup.validation.currentText() == NO_VALIDATION

    form = setup.form
    assert "evaluations in a row" in form.editors["training.early_stopping_patience"].toolTip()
    assert "NEFTune" in form.editors["training.neftune_alpha"].toolTip()
    final = form.editors["training.final_adapter"]
    assert [final.itemText(i) for i in range(final.count())] == ["best", "last"]
    patience = form.editors["training.early_stopping_patience"]
    patience.setText("-1")
    patience.textEdited.emit("-1")
    assert (
        "training.early_stopping_patience = -1"
        in form.error_labels["training.early_stopping_patience"].text()
    )
    assert not setup.start_button.isEnabled()
    patience.setText("3")
    patience.textEdited.emit("3")
    assert setup.start_button.isEnabled() and setup.config().training.early_stopping_patience == 3
