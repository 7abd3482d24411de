"""Preference runs' figures in the run history (plots) and in the event text (CLI, run log)."""

from __future__ import annotations

import json

from engine.runs.history import RunHistory, load_history
from engine.runs.text import event_text


def metrics(step: int, **fields) -> dict:
    return {"type": "metrics", "time": 0.0, "step": step, "max_steps": 10, "loss": 0.7, **fields}


def pair_figures(step: int) -> dict:
    return {
        "reward_chosen": 0.1 * step,
        "reward_rejected": -0.1 * step,
        "reward_margin": 0.2 * step,
        "reward_accuracy": 0.5 + 0.05 * step,
    }


def test_reward_figures_become_series_and_the_run_counts_as_preference(tmp_path):
    events = [{"type": "model", "time": 0.0, "method": "dpo"}]
    events += [metrics(s, **pair_figures(s)) for s in range(1, 5)]
    events.append(
        {
            "type": "eval",
            "time": 0.0,
            "step": 4,
            "eval_loss": 0.5,
            "eval_reward_margin": 0.9,
            "eval_reward_accuracy": 1.0,
        }
    )
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    history = load_history(tmp_path)
    assert history.method == "dpo" and history.has_preference()
    steps, margin = history.series("reward_margin")
    assert steps.tolist() == [1, 2, 3, 4]
    assert [round(v, 6) for v in margin.tolist()] == [0.2, 0.4, 0.6, 0.8]
    assert history.series("reward_rejected")[1].tolist()[-1] == -0.4
    assert history.series("eval_reward_margin")[1].tolist() == [0.9]
    assert history.series("eval_reward_accuracy")[1].tolist() == [1.0]
    assert history.series("eval_loss")[1].tolist() == [0.5]


def test_a_resume_rewinds_the_reward_series_and_a_reevaluation_replaces_its_point():
    history = RunHistory()
    history.add_events([metrics(s, **pair_figures(s)) for s in range(1, 7)])
    history.add_events([{"type": "eval", "step": 6, "eval_loss": 0.5, "eval_reward_margin": 0.3}])
    changed = history.add_events([{"type": "status", "state": "training", "step": 3}])
    assert {"reward_margin", "reward_accuracy", "eval_reward_margin"} <= changed
    assert history.series("reward_margin")[0].tolist() == [1, 2, 3]
    assert len(history.series("eval_reward_margin")[0]) == 0
    history.add_events([{"type": "eval", "step": 3, "eval_loss": 0.5, "eval_reward_margin": 0.1}])
    history.add_events([{"type": "eval", "step": 3, "eval_loss": 0.4, "eval_reward_margin": 0.2}])
    assert history.series("eval_reward_margin")[1].tolist() == [0.2]


def test_supervised_runs_are_not_preference_runs():
    history = RunHistory()
    history.add_events([{"type": "model", "method": "sft"}] + [metrics(s) for s in range(1, 4)])
    assert not history.has_preference()
    assert len(history.series("reward_margin")[0]) == 0
    older = RunHistory()  # runs from before training.method: no method in the model event
    older.add_events([{"type": "model"}, metrics(1)])
    assert older.method is None and not older.has_preference()


def test_event_text_names_the_method_and_the_reward_figures():
    line = event_text(metrics(3, **pair_figures(3)))
    assert line.endswith("reward margin 0.600  accuracy 65%")
    assert "reward" not in event_text(metrics(3))
    evaluation = {
        "type": "eval",
        "step": 4,
        "eval_loss": 0.5,
        "eval_reward_margin": 0.9,
        "eval_reward_accuracy": 1.0,
    }
    assert event_text(evaluation) == "eval loss 0.5000 at step 4  reward margin 0.900  accuracy 100%"
    model = {
        "type": "model",
        "device": "cpu",
        "dtype": "float32",
        "method": "kto",
        "trainable_parameters": 10,
        "total_parameters": 100,
    }
    assert event_text(model) == "model on cpu (float32, KTO): 10 trainable of 100 parameters"
    model["method"] = "sft"
    assert event_text(model) == "model on cpu (float32): 10 trainable of 100 parameters"
