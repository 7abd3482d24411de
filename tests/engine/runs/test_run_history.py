"""RunHistory: the plottable series of a run, rewinds on resume, smoothing, settings diff."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tomli_w

from engine.errors import UserError
from engine.runs.history import RunHistory, config_diff, load_history, smooth


def metrics(step: int, loss: float | None = 1.0, **fields) -> dict:
    event = {
        "type": "metrics",
        "time": 0.0,
        "step": step,
        "max_steps": 100,
        "epoch": step / 100,
        "loss": loss,
        "learning_rate": 1e-4,
        "grad_norm": 0.5,
        "tokens": step * 10,
        "tokens_per_second": 100.0,
        "peak_memory_mb": 500.0,
        "memory_kind": "process_rss",
    }
    event.update(fields)
    return event


def training(step: int) -> dict:
    return {"type": "status", "time": 0.0, "state": "training", "step": step, "max_steps": 100}


def naive_smooth(values, weight):
    """TensorBoard's loop, the reference for the vectorised version."""
    out, last = [], 0.0
    for i, value in enumerate(values, start=1):
        last = last * weight + (1 - weight) * value
        out.append(last / (1 - weight**i) if weight else last)
    return np.array(out)


def test_resume_from_an_earlier_checkpoint_rewinds_every_series():
    history = RunHistory()
    history.add_events([training(0), *(metrics(s, loss=10.0 + s) for s in range(1, 11))])
    history.add_events([{"type": "eval", "time": 0.0, "step": 8, "epoch": 0.08, "eval_loss": 2.0}])
    changed = history.add_events([training(4)])
    assert changed >= {"loss", "grad_norm", "eval_loss"}
    steps, values = history.series("loss")
    assert steps.tolist() == [1, 2, 3, 4] and values.tolist() == [11, 12, 13, 14]
    assert len(history.series("eval_loss")[0]) == 0  # the eval at step 8 belonged to the abandoned branch
    history.add_events([metrics(s, loss=20.0 + s) for s in range(5, 8)])
    steps, values = history.series("loss")
    assert steps.tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert values.tolist() == [11, 12, 13, 14, 25, 26, 27]
    assert history.series("learning_rate")[0].tolist() == steps.tolist()
    assert len(history) == 7 and history.last_step() == 7


def test_a_repeated_step_without_its_status_event_also_rewinds():
    history = RunHistory()
    history.add_events([metrics(s) for s in range(1, 6)] + [metrics(3, loss=9.0)])
    steps, values = history.series("loss")
    assert steps.tolist() == [1, 2, 3] and values[-1] == 9.0


def test_null_and_non_finite_values_are_skipped():
    history = RunHistory()
    history.add_events(
        [
            metrics(1, loss=2.0, grad_norm=None, learning_rate=None),
            metrics(2, loss=None),
            metrics(3, loss=float("nan"), grad_norm=float("inf")),
            metrics(4, loss=1.5, learning_rate=True),  # a bool is not a number
            {"type": "eval", "time": 0.0, "step": 4, "eval_loss": None},
            {"type": "warning", "time": 0.0, "message": "ignored"},
            {"type": "metrics", "time": 0.0, "step": None, "loss": 3.0},
        ]
    )
    assert history.series("loss")[0].tolist() == [1, 4]
    assert history.series("grad_norm")[0].tolist() == [2, 4]
    assert history.series("learning_rate")[0].tolist() == [2, 3]
    assert len(history.series("eval_loss")[0]) == 0
    assert history.memory_kind == "process_rss"


def test_add_events_reports_only_the_series_that_changed():
    history = RunHistory()
    assert history.add_events([metrics(1, grad_norm=None)]) == {
        "loss",
        "learning_rate",
        "tokens_per_second",
        "peak_memory_mb",
    }
    assert history.add_events([{"type": "eval", "time": 0.0, "step": 1, "eval_loss": 1.0}]) == {"eval_loss"}
    assert history.add_events([{"type": "checkpoint", "time": 0.0, "step": 1}]) == set()


def test_one_event_at_a_time_grows_the_buffers():
    # Reads between appends move staged points into buffers that must grow; the cost per append
    # is measured by benchmarks/hot_paths.py.
    history = RunHistory()
    for step in range(1, 20_001):
        history.add_events([metrics(step, loss=float(step))])
        if step % 997 == 0 or step == 257:
            steps, values = history.series("loss")
            assert np.array_equal(steps, np.arange(1, step + 1)) and np.array_equal(steps, values)
    steps, values = history.series("loss")
    assert len(history) == 20_000 and np.array_equal(steps, np.arange(1, 20_001))
    assert np.array_equal(steps, values) and history.last_step() == 20_000
    assert len(history._series["loss"].steps) < 2 * 20_000  # grown by doubling, not without bound


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.6, 0.9, 0.99, 0.999])
@pytest.mark.parametrize("n", [1, 7, 256, 1000, 5001])
def test_smooth_matches_the_naive_loop(weight, n):
    values = np.random.default_rng(n).normal(2.0, 0.5, n)
    np.testing.assert_allclose(smooth(values, weight), naive_smooth(values, weight), rtol=1e-10, atol=1e-12)


def test_smooth_of_nothing_is_nothing():
    assert smooth(np.empty(0), 0.6).shape == (0,)


def write_config(run_dir, **changes):
    from engine.config import RunConfig

    raw = RunConfig().to_dict()
    for dotted, value in changes.items():
        group, key = dotted.split(".")
        raw[group][key] = value
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(tomli_w.dumps(raw), encoding="utf-8")
    return run_dir


def test_config_diff_lists_only_the_settings_that_differ(tmp_path):
    a = write_config(tmp_path / "a", **{"training.learning_rate": 2e-4, "lora.rank": 16})
    b = write_config(tmp_path / "b", **{"training.learning_rate": 1e-4, "lora.rank": 32})
    assert config_diff(a, b) == [("lora.rank", 16, 32), ("training.learning_rate", 2e-4, 1e-4)]
    assert config_diff(a, a) == []


def test_config_diff_reports_missing_keys_as_none_and_nested_tables_by_dotted_key():
    a = {"data": {"columns": {"prompt": "q"}}, "training": {"padding_free": False}}
    b = {"data": {"columns": {"prompt": "question"}}, "training": {"padding_free": 0, "seed": 1}}
    assert config_diff(a, b) == [
        ("data.columns.prompt", "q", "question"),
        ("training.padding_free", False, 0),
        ("training.seed", None, 1),
    ]


def test_config_diff_says_which_run_has_no_usable_config(tmp_path):
    good = write_config(tmp_path / "good")
    (tmp_path / "missing").mkdir()
    with pytest.raises(UserError, match="missing has no config.toml"):
        config_diff(good, tmp_path / "missing")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.toml").write_text("[training\nlearning_rate = ", encoding="utf-8")
    with pytest.raises(UserError, match="settings file of run broken is damaged"):
        config_diff(tmp_path / "broken", good)


def test_load_history_ignores_a_torn_last_line(tmp_path):
    lines = [json.dumps(e) + "\n" for e in (training(0), metrics(1, loss=3.0), metrics(2, loss=2.0))]
    (tmp_path / "events.jsonl").write_text(
        "".join(lines) + '{"type": "metrics", "step": 3, "lo', encoding="utf-8"
    )
    history = load_history(tmp_path)
    assert history.series("loss")[1].tolist() == [3.0, 2.0]
    assert len(load_history(tmp_path / "nothing-here")) == 0
