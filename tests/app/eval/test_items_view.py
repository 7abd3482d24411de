"""The per-item view: the base's answer beside a tuned model's, filtered to what got worse or better."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.eval.items_view import FORGETTING_SOURCE, ItemsView


def labels(view: ItemsView) -> list[str]:
    return [row.label for row in view.items.rows]


def test_got_worse_and_got_better_on_the_forgetting_probe(qtbot, report):
    view = ItemsView()
    qtbot.addWidget(view)
    view.show_report(report)
    assert [view.source.itemText(i) for i in range(view.source.count())] == ["facts", FORGETTING_SOURCE]
    view.set_source(FORGETTING_SOURCE)
    assert len(view.items.rows) == 5
    view.set_filter("Got worse")
    assert labels(view) == ["#1 · arithmetic"]  # "2 + 2": passed on the base, failed after tuning
    row = view.items.rows[0]
    assert (row.base_answer, row.base_passed, row.passed) == ("4", True, False)
    assert "1 of 5 items · 1 got worse · 1 got better" == view.count.text()
    view.set_filter("Got better")
    assert labels(view) == ["#2 · arithmetic"]
    view.set_filter("Changed")  # the haiku changed too, unscored; the JSON reply changed but still passes
    assert labels(view) == ["#1 · arithmetic", "#2 · arithmetic", "#4 · formatting", "#5 · instructions"]


def test_eval_set_filters_and_the_detail_pane(qtbot, report):
    view = ItemsView()
    qtbot.addWidget(view)
    view.show_report(report)
    view.set_source("facts")
    view.set_filter("Got worse")
    assert labels(view) == []
    view.set_filter("Got better")
    assert labels(view) == ["#1", "#3", "#4", "#5"]
    view.set_filter("All")
    assert view.items.headers[3:6:2] == ["Base model: answer", "Quick test: answer"]
    view.table.selectRow(2)
    detail = view.detail.toPlainText()
    assert (
        "Release codename?" in detail and "Granite" in detail and "Basalt" in detail and "✓ passed" in detail
    )


def test_long_answers_are_one_line_in_the_table_and_whole_in_tooltip_and_detail(qtbot, report):
    view = ItemsView()
    qtbot.addWidget(view)
    view.show_report(report)
    view.set_source(FORGETTING_SOURCE)
    view.table.selectRow(4)
    index = view.items.index(4, 5)
    shown = view.items.data(index)
    assert "\n" not in shown and len(shown) <= 300
    assert view.items.data(index, Qt.ItemDataRole.ToolTipRole).count("rain, rain") >= 20
    assert view.detail.toPlainText().count("Rain, rain") == 20
    assert view.items.data(view.items.index(4, 6)) == "—"  # not scored


def test_a_base_only_report_shows_each_answer_once(qtbot, report):
    view = ItemsView()
    qtbot.addWidget(view)
    view.show_report(report)
    assert not view.table.isColumnHidden(5) and not view.table.isColumnHidden(6)
    report["models"] = report["models"][:1]
    view.show_report(report)
    view.set_source("facts")
    assert view.table.isColumnHidden(5) and view.table.isColumnHidden(6)
    assert view.items.headers[3] == "Base model: answer"
    view.table.selectRow(0)
    assert view.detail.toPlainText().count("Base model: answer") == 1
