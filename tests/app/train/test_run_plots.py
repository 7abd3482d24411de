"""The live training plots: what is plotted, smoothing, rewinds on resume, a 100k-step history."""

from __future__ import annotations

import numpy as np
import pytest

from app.train.plots import RunPlots
from engine.runs.history import smooth


def metrics(step: int, loss: float | None = None, **fields) -> dict:
    event = {
        "type": "metrics",
        "time": 0.0,
        "step": step,
        "max_steps": 100_000,
        "epoch": step / 1000,
        "loss": 2.0 + np.sin(step) if loss is None else loss,
        "learning_rate": 1e-4 * step,
        "grad_norm": 0.5 + step % 3,
        "tokens": step * 64,
        "tokens_per_second": 1000.0 + step,
        "peak_memory_mb": 300.0 + step % 7,
        "memory_kind": "process_rss",
    }
    event.update(fields)
    return event


def evaluation(step: int, loss: float) -> dict:
    return {"type": "eval", "time": 0.0, "step": step, "epoch": step / 1000, "eval_loss": loss}


def training(step: int) -> dict:
    return {"type": "status", "time": 0.0, "state": "training", "step": step, "max_steps": 100_000}


@pytest.fixture
def plots(qtbot) -> RunPlots:
    widget = RunPlots()
    qtbot.addWidget(widget)
    widget.resize(1000, 700)
    widget.show()
    return widget


def wait_points(qtbot, plots: RunPlots, name: str, count: int, timeout: int = 4000) -> None:
    qtbot.waitUntil(lambda: len(plots.curve_data(name)[0]) == count, timeout=timeout)


def test_batches_of_events_become_the_plotted_curves(qtbot, plots):
    assert not plots._empty.isHidden()  # "No metrics yet"
    events = [training(0)] + [metrics(s) for s in range(1, 51)]
    events.insert(30, evaluation(25, 1.7))
    events.append({"type": "checkpoint", "time": 0.0, "step": 50, "path": "x"})
    for start in range(0, len(events), 7):
        plots.add_events(events[start : start + 7])
    wait_points(qtbot, plots, "loss", 50)
    wait_points(qtbot, plots, "eval_loss", 1)
    steps = np.arange(1, 51, dtype=float)
    x, y = plots.curve_data("loss")
    np.testing.assert_array_equal(x, steps)
    np.testing.assert_allclose(y, 2.0 + np.sin(steps))
    x, y = plots.curve_data("loss_smoothed")
    np.testing.assert_allclose(y, smooth(2.0 + np.sin(steps), 0.6))
    assert plots.curve_data("eval_loss")[1].tolist() == [1.7]
    np.testing.assert_allclose(plots.curve_data("learning_rate")[1], 1e-4 * steps)
    np.testing.assert_allclose(plots.curve_data("tokens_per_second")[1], 1000.0 + steps)
    np.testing.assert_allclose(plots.curve_data("grad_norm")[1], 0.5 + steps % 3)
    np.testing.assert_allclose(plots.curve_data("peak_memory_mb")[1], 300.0 + steps % 7)
    assert plots._empty.isHidden()
    assert "process RSS" in plots._plots["peak_memory_mb"].titleLabel.text
    assert all(count <= 2 for count in plots.draw_counts.values())  # 8 batches, coalesced redraws


def test_smoothing_change_redraws_only_the_smoothed_curve(qtbot, plots):
    plots.add_events([metrics(s) for s in range(1, 201)])
    wait_points(qtbot, plots, "loss_smoothed", 200)
    before = dict(plots.draw_counts)
    old = plots.curve_data("loss_smoothed")[1].copy()
    plots.set_smoothing(0.95)
    qtbot.waitUntil(lambda: plots.draw_counts["loss_smoothed"] == before["loss_smoothed"] + 1, timeout=2000)
    new = plots.curve_data("loss_smoothed")[1]
    np.testing.assert_allclose(new, smooth(plots.curve_data("loss")[1], 0.95))
    assert not np.allclose(new, old)
    assert {k: v for k, v in plots.draw_counts.items() if k != "loss_smoothed"} == {
        k: v for k, v in before.items() if k != "loss_smoothed"
    }
    assert plots._smoothing_control.slider.value() == 95 and plots.smoothing() == 0.95


def test_a_resume_from_an_earlier_checkpoint_rewinds_the_curves(qtbot, plots):
    plots.add_events([training(0)] + [metrics(s, loss=10.0 + s) for s in range(1, 11)] + [evaluation(8, 5.0)])
    wait_points(qtbot, plots, "loss", 10)
    plots.add_events([training(4)] + [metrics(s, loss=20.0 + s) for s in range(5, 8)])
    wait_points(qtbot, plots, "loss", 7)
    x, y = plots.curve_data("loss")
    assert x.tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert y.tolist() == [11, 12, 13, 14, 25, 26, 27]  # continues from step 4, no zig-zag
    assert len(plots.curve_data("eval_loss")[0]) == 0
    assert plots.curve_data("grad_norm")[0].tolist() == x.tolist()


def test_100k_events_in_batches_of_1000_are_drawn_once_not_per_batch(qtbot, plots):
    # Redraws are coalesced on a timer; their cost and the UI thread's stalls are measured by
    # benchmarks/plots_100k.py.
    n = 100_000
    events = [metrics(s, loss=1.0 + 1.0 / s) for s in range(1, n + 1)]
    for i in range(0, n, 1000):
        plots.add_events(events[i : i + 1000])
    for name in (
        "loss",
        "loss_smoothed",
        "learning_rate",
        "grad_norm",
        "tokens_per_second",
        "peak_memory_mb",
    ):
        wait_points(qtbot, plots, name, n)
        assert 1 <= plots.draw_counts[name] <= 2, (name, plots.draw_counts[name])  # 100 batches
    assert plots.curve_data("loss")[0][-1] == n and plots.curve_data("loss")[1][-1] == 1.0 + 1.0 / n
    assert len(plots.history) == n


def test_a_whole_history_at_once_is_parsed_in_slices(qtbot, plots):
    events = [metrics(s) for s in range(1, 20_001)]
    plots.add_events(events)
    assert plots.is_loading()  # the UI thread is free between slices
    wait_points(qtbot, plots, "loss", 20_000)
    assert not plots.is_loading()


def test_clear_empties_every_curve(qtbot, plots):
    plots.add_events([metrics(s) for s in range(1, 30)] + [evaluation(20, 1.0)])
    wait_points(qtbot, plots, "eval_loss", 1)
    plots.clear()
    for name in ("loss", "loss_smoothed", "eval_loss", "learning_rate", "peak_memory_mb"):
        wait_points(qtbot, plots, name, 0)
    qtbot.waitUntil(lambda: not plots._empty.isHidden(), timeout=2000)
    assert len(plots.history) == 0
    plots.add_events([metrics(1)])
    wait_points(qtbot, plots, "loss", 1)
