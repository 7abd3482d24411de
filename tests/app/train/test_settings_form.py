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


def _wheel(widget, steps: int) -> None:
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    centre = QPointF(widget.rect().center())
    event = QWheelEvent(
        centre,
        QPointF(widget.mapToGlobal(centre.toPoint())),
        QPoint(),
        QPoint(0, -120 * steps),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def test_scrolling_the_form_over_a_combo_box_does_not_change_the_setting(qtbot):
    """Seen in a screenshot session: the wheel scrolled the form and turned nf4 into fp4 on the way."""
    form = SettingsForm()
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setWidget(form)
    qtbot.addWidget(scroll)
    scroll.resize(600, 300)
    scroll.show()
    combo = form.editors["quantization.quant_type"]
    before = combo.currentText()
    _wheel(combo, 1)
    assert combo.currentText() == before  # not focused: the wheel goes to the scroll area
    combo.setFocus()
    qtbot.waitUntil(combo.hasFocus)
    _wheel(combo, 1)
    assert combo.currentText() != before  # once the user is in it, the wheel picks a value
