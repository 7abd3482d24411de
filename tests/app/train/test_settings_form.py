"""The run settings form fits the width it gets: two columns where they fit, one otherwise."""

from __future__ import annotations

from PySide6.QtWidgets import QScrollArea

from app.train.settings_form import SettingsForm


def test_a_narrow_form_stacks_its_groups_instead_of_hiding_editors(qtbot):
    form = SettingsForm()
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setWidget(form)
    qtbot.addWidget(scroll)
    one_column, two_columns = form._column_widths()
    scroll.show()
    for width, columns in ((one_column + 40, 1), (two_columns + 40, 2)):
        scroll.resize(width, 500)
        qtbot.waitUntil(lambda columns=columns: form._columns == columns)
        assert not scroll.horizontalScrollBar().isVisible()
        editor = form.editors["training.learning_rate"]
        right_edge = editor.mapTo(form, editor.rect().topRight()).x()
        assert right_edge <= scroll.viewport().width(), "an editor is cut off at the right"
