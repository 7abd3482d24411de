"""Validation loss per checkpoint: the curve, the checkpoints and the best one marked, the empty state."""

from __future__ import annotations

import numpy as np

from app.eval.loss_chart import NO_VALIDATION, LossChart

EVALS = {10: 1.5, 20: 1.1, 25: 0.9, 30: 1.2, 40: 1.6}  # lowest at 25, which has no checkpoint


def test_best_checkpoint_is_the_lowest_validation_loss_among_checkpoints(qtbot, tmp_path, write_run):
    run = write_run(tmp_path / "run", EVALS, checkpoints=[10, 20, 30, 40])
    chart = LossChart()
    qtbot.addWidget(chart)
    chart.show_run(run)
    x, y = chart.eval_curve.getData()
    assert list(x) == [10, 20, 25, 30, 40] and np.allclose(y, list(EVALS.values()))
    assert chart.checkpoint_steps == [10, 20, 30, 40]
    assert chart.best[:2] == (20, 1.1)
    bx, by = chart.best_marker.getData()
    assert list(bx) == [20] and list(by) == [1.1]
    assert chart.message() == ""
    assert "step 20" in chart.caption.text() and "overfitted after step 25" in chart.caption.text()


def test_best_json_wins_and_unfinished_checkpoints_are_ignored(qtbot, tmp_path, write_run):
    run = write_run(
        tmp_path / "run",
        EVALS,
        checkpoints=[10, 30],
        best={"step": 30, "eval_loss": 1.2, "path": "checkpoints/checkpoint-30"},
    )
    (run / "checkpoints" / "checkpoint-20").mkdir()  # no completion marker: a save cut short
    chart = LossChart()
    qtbot.addWidget(chart)
    chart.show_run(run)
    assert chart.checkpoint_steps == [10, 30]
    assert chart.best == (30, 1.2, "best.json")


def test_run_without_validation_data_says_how_to_get_it(qtbot, tmp_path, write_run):
    run = write_run(tmp_path / "run", {}, checkpoints=[20, 40])
    chart = LossChart()
    qtbot.addWidget(chart)
    chart.show_run(run)
    assert chart.message() == NO_VALIDATION
    assert chart.best is None
    assert len(chart.best_marker.getData()[0] or []) == 0
