"""The scorecard: metric rows, model columns, green/red against the base, missing metrics left out."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.eval.scorecard import Scorecard
from app.widgets.theme import BETTER_COLOR, WORSE_COLOR


def test_scorecard_fills_from_report_with_values_and_colours(qtbot, report):
    card = Scorecard()
    qtbot.addWidget(card)
    card.show_report(report)
    table = card.table
    assert [table.headerData(c, Qt.Orientation.Horizontal) for c in range(2)] == ["Base model", "Quick test"]
    assert [m.key for m in table.metrics] == [
        "set:facts",
        "validation_loss",
        "perplexity",
        "forgetting_accuracy",
        "accuracy_drop",
        "kl",
        "changed",
        "bias_gap",
    ]
    assert (card.cell_text("set:facts", 0), card.cell_text("set:facts", 1)) == ("20%", "100%")
    assert card.cell_text("forgetting_accuracy", 0) == "61.1%"
    assert card.cell_text("accuracy_drop", 1) == "11.1 pts"
    assert card.cell_text("validation_loss", 1) == "1.120"
    assert card.cell_text("bias_gap", 1) == "1.90 nats"
    # Higher is better for scores; lower for losses; the probe's costs are worse than the base's zero.
    assert card.verdict("set:facts", 1) == "better"
    assert card.verdict("validation_loss", 1) == card.verdict("perplexity", 1) == "better"
    for key in ("forgetting_accuracy", "accuracy_drop", "kl", "changed"):
        assert card.verdict(key, 1) == "worse", key
    assert card.verdict("bias_gap", 1) is None  # equal: no colour
    assert card.verdict("set:facts", 0) is None  # the base is the reference
    facts = table.index(card.row_of("set:facts"), 1)
    assert table.data(facts, Qt.ItemDataRole.ForegroundRole).name() == BETTER_COLOR
    kl = table.index(card.row_of("kl"), 1)
    assert table.data(kl, Qt.ItemDataRole.ForegroundRole).name() == WORSE_COLOR
    assert table.data(table.index(card.row_of("bias_gap"), 1), Qt.ItemDataRole.BackgroundRole) is None
    tip = table.data(facts, Qt.ItemDataRole.ToolTipRole)
    assert "Base model: 20%" in tip and "+80.0 pts (better)" in tip and "5 of 5 scored items" in tip


def test_scorecard_leaves_out_metrics_the_report_lacks(qtbot, report):
    for model in report["models"]:
        model["validation"] = None
        del model["probes"]["bias"]
    card = Scorecard()
    qtbot.addWidget(card)
    card.show_report(report)
    keys = [m.key for m in card.table.metrics]
    assert "validation_loss" not in keys and "perplexity" not in keys and "bias_gap" not in keys
    assert card.row_of("kl") >= 0


def test_scorecard_without_a_base_colours_nothing(qtbot, report):
    report["models"] = report["models"][1:]  # --no-base
    card = Scorecard()
    qtbot.addWidget(card)
    card.show_report(report)
    assert card.table.columnCount() == 1
    assert card.verdict("set:facts", 0) is None


def test_the_base_is_the_reference_of_the_rows_measured_against_it(qtbot, report):
    card = Scorecard()
    qtbot.addWidget(card)
    card.show_report(report)
    for key in ("accuracy_drop", "kl", "changed"):  # 0 by definition for the base: not a result
        assert card.cell_text(key, 0) == "—", key
        tip = card.table.data(card.table.index(card.row_of(key), 0), Qt.ItemDataRole.ToolTipRole)
        assert "measures the other models against" in tip
    assert card.cell_text("forgetting_accuracy", 0) == "61.1%"  # the base's own measurement stays
    assert card.verdict("accuracy_drop", 1) == "worse"  # still judged against the base's zero


def test_a_base_only_report_has_no_rows_measured_against_the_base(qtbot, report):
    report["models"] = report["models"][:1]  # no run ticked: the base alone
    card = Scorecard()
    qtbot.addWidget(card)
    card.show_report(report)
    keys = [m.key for m in card.table.metrics]
    assert "forgetting_accuracy" in keys and "set:facts" in keys
    assert not {"accuracy_drop", "kl", "changed"} & set(keys)
