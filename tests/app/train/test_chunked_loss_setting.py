"""The form's chunked-loss setting: "auto", true or false, in a list, with the engine's help as tooltip."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox

from app.train.settings_form import SettingsForm
from engine.config import RunConfig


def test_chunked_loss_is_a_list_of_auto_true_false_that_round_trips(qtbot):
    form = SettingsForm()
    qtbot.addWidget(form)
    editor = form.editors["training.chunked_loss"]
    assert isinstance(editor, QComboBox)
    assert [editor.itemText(i) for i in range(editor.count())] == ["auto", "true", "false"]
    assert "logits" in editor.toolTip()
    for value, text in (("auto", "auto"), (False, "false"), (True, "true")):
        raw = RunConfig().with_overrides({"training.chunked_loss": value}).to_dict()
        form.set_values(raw)
        assert editor.currentText() == text
        out = form.values_into(raw)["training"]["chunked_loss"]
        assert out == value and type(out) is type(value)
        assert not form.error_labels["training.chunked_loss"].text()
