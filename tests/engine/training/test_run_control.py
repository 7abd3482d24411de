"""Pause, train further and resume from an earlier checkpoint: the run folder stays the truth."""

from __future__ import annotations

import shutil

import pytest
from testkit.engine_helpers import losses, states, tiny_config

from engine.config import load_config
from engine.errors import ConfigError
from engine.runs import checkpoints
from engine.runs.events import read_events
from engine.runs.state import summarize_run
from engine.training.recipe import request_stop, train


def copy_run(short_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(short_run, run)
    return run


def test_a_finished_run_keeps_a_checkpoint_at_its_last_step(short_run):
    assert [s for s, _ in checkpoints.complete_checkpoints(short_run)] == [4, 8]
    assert summarize_run(short_run).state == "done"


def test_a_pause_is_a_stop_with_a_checkpoint_shown_as_paused(tiny_model_dir, facts_file, tmp_path):
    run = tmp_path / "run"
    config = tiny_config(tiny_model_dir, facts_file, training__max_steps=50, training__save_every=100)

    def pause_at_step_2(event):
        if event["type"] == "metrics" and event["step"] == 2:
            request_stop(run, pause=True)

    result = train(config, run, echo=pause_at_step_2)
    assert result.state == "stopped" and result.step == 3
    assert summarize_run(run).state == "paused"
    assert checkpoints.latest_complete(run).name == "checkpoint-3"


@pytest.mark.slow  # trains further from a finished run
def test_train_further_continues_a_finished_run_with_more_steps(short_run, tmp_path):
    run = copy_run(short_run, tmp_path)
    before = losses(run)
    config = load_config(run / "config.toml").with_overrides({"training.max_steps": 11})
    result = train(config, run, resume=True)
    assert result.state == "done" and result.step == 11
    after = losses(run)
    assert sorted(after) == list(range(1, 12))
    assert all(after[s] == before[s] for s in before)  # the earlier curve is kept, the new part appended
    assert states(run)[-1] == "done" and summarize_run(run).step == 11
    assert load_config(run / "config.toml").training.max_steps == 11


def test_train_further_needs_more_steps_than_the_run_has(short_run, tmp_path):
    run = copy_run(short_run, tmp_path)
    size = (run / "events.jsonl").stat().st_size
    with pytest.raises(ConfigError, match="already at step 8"):
        train(load_config(run / "config.toml"), run, resume=True)
    assert (run / "events.jsonl").stat().st_size == size  # refused before anything was written
    assert summarize_run(run).state == "done"


def test_resume_from_an_earlier_checkpoint_branches_the_run(short_run, tmp_path):
    run = copy_run(short_run, tmp_path)
    config = load_config(run / "config.toml").with_overrides({"training.max_steps": 6})
    with pytest.raises(ConfigError, match="no complete checkpoint at step 5"):
        train(config, run, resume=True, resume_step=5)
    result = train(config, run, resume=True, resume_step=4)
    assert result.state == "done" and result.step == 6
    assert [s for s, _ in checkpoints.complete_checkpoints(run)] == [4, 6]  # step 8 was the old branch
    training = [
        e for e in read_events(run / "events.jsonl") if e["type"] == "status" and e["state"] == "training"
    ]
    assert training[-1]["step"] == 4  # readers rewind the curve to here
