"""The form's padding-free setting: "auto", true or false, in a list, round-tripped as TOML values."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox

from app.train.settings_form import SettingsForm
from engine.config import RunConfig


def test_padding_free_is_a_list_of_auto_true_false_that_round_trips(qtbot):
    form = SettingsForm()
    qtbot.addWidget(form)
    editor = form.editors["training.padding_free"]
    assert isinstance(editor, QComboBox)
    assert [editor.itemText(i) for i in range(editor.count())] == ["auto", "true", "false"]
    assert "auto" in editor.toolTip()
    for value, text in (("auto", "auto"), (False, "false"), (True, "true")):
        raw = RunConfig().with_overrides({"training.padding_free": value}).to_dict()
        form.set_values(raw)
        assert editor.currentText() == text
        out = form.values_into(raw)["training"]["padding_free"]
        assert out == value and type(out) is type(value)
        assert RunConfig.from_dict(form.values_into(raw)).training.padding_free == value
        assert not form.error_labels["training.padding_free"].text()
