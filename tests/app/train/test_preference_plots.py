"""The live plots of a preference run: rewards, margin and accuracy appear for dpo/orpo/kto only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.train.plots import RunPlots
from engine.runs.events import read_events


def metrics(step: int, **fields) -> dict:
    event = {
        "type": "metrics",
        "time": 0.0,
        "step": step,
        "max_steps": 40,
        "loss": 0.69 - 0.01 * step,
        "learning_rate": 1e-4,
        "grad_norm": 1.0,
        "tokens_per_second": 500.0,
        "peak_memory_mb": 300.0,
        "memory_kind": "process_rss",
    }
    event.update(fields)
    return event


def preference_metrics(step: int) -> dict:
    chosen, rejected = 0.02 * step, -0.03 * step
    return metrics(
        step,
        reward_chosen=chosen,
        reward_rejected=rejected,
        reward_margin=chosen - rejected,
        reward_accuracy=min(1.0, 0.5 + 0.02 * step),
    )


def preference_eval(step: int) -> dict:
    return {
        "type": "eval",
        "time": 0.0,
        "step": step,
        "eval_loss": 0.6,
        "eval_reward_margin": 0.04 * step,
        "eval_reward_accuracy": 0.75,
    }


@pytest.fixture
def plots(qtbot) -> RunPlots:
    widget = RunPlots()
    qtbot.addWidget(widget)
    widget.resize(1000, 800)
    widget.show()
    return widget


def test_a_preference_run_from_its_events_file_shows_and_fills_the_reward_plots(qtbot, plots, tmp_path):
    events = [{"type": "model", "time": 0.0, "method": "dpo", "device": "cpu"}]
    events += [preference_metrics(s) for s in range(1, 21)] + [preference_eval(10), preference_eval(20)]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    assert not plots.preference_shown()
    plots.add_events(list(read_events(path)))
    qtbot.waitUntil(lambda: len(plots.curve_data("reward_margin")[0]) == 20, timeout=4000)
    assert plots.preference_shown()
    steps = np.arange(1, 21, dtype=float)
    np.testing.assert_allclose(plots.curve_data("reward_chosen")[1], 0.02 * steps)
    np.testing.assert_allclose(plots.curve_data("reward_rejected")[1], -0.03 * steps)
    np.testing.assert_allclose(plots.curve_data("reward_margin")[1], 0.05 * steps)
    np.testing.assert_allclose(plots.curve_data("reward_accuracy")[1], np.minimum(1.0, 0.5 + 0.02 * steps))
    assert plots.curve_data("eval_reward_margin")[0].tolist() == [10, 20]
    np.testing.assert_allclose(plots.curve_data("eval_reward_margin")[1], [0.4, 0.8])
    assert plots.curve_data("eval_reward_accuracy")[1].tolist() == [0.75, 0.75]
    assert plots.curve_data("eval_loss")[1].tolist() == [0.6, 0.6]
    # Laid out under the loss: the three reward plots sit between it and the learning-rate plot.
    loss, rewards, rate = (plots._plots[n].sceneBoundingRect() for n in ("loss", "rewards", "learning_rate"))
    assert loss.bottom() <= rewards.top() and rewards.bottom() <= rate.top()


def test_live_batches_extend_the_reward_curves(qtbot, plots):
    plots.add_events([preference_metrics(s) for s in range(1, 6)])
    qtbot.waitUntil(lambda: len(plots.curve_data("reward_accuracy")[0]) == 5, timeout=4000)
    plots.add_events([preference_metrics(s) for s in range(6, 9)])
    qtbot.waitUntil(lambda: len(plots.curve_data("reward_accuracy")[0]) == 8, timeout=4000)
    assert plots.curve_data("reward_margin")[0].tolist() == list(range(1, 9))


def test_a_supervised_run_has_no_reward_plots(qtbot, plots):
    plots.add_events([{"type": "model", "time": 0.0, "method": "sft"}] + [metrics(s) for s in range(1, 11)])
    qtbot.waitUntil(lambda: len(plots.curve_data("loss")[0]) == 10, timeout=4000)
    assert not plots.preference_shown()
    assert len(plots.curve_data("reward_margin")[0]) == 0
    # The small plots keep the room the reward row would take.
    loss, rate = plots._plots["loss"].sceneBoundingRect(), plots._plots["learning_rate"].sceneBoundingRect()
    assert rate.top() - loss.bottom() < 40


def test_the_model_event_alone_shows_the_row_and_clear_removes_it(qtbot, plots):
    plots.add_events([{"type": "model", "time": 0.0, "method": "orpo"}, metrics(1)])
    qtbot.waitUntil(plots.preference_shown, timeout=4000)
    plots.clear()
    qtbot.waitUntil(lambda: not plots.preference_shown(), timeout=4000)
    plots.add_events([metrics(1)])
    qtbot.waitUntil(lambda: len(plots.curve_data("loss")[0]) == 1, timeout=4000)
    assert not plots.preference_shown()
