"""training.gradient_checkpointing "auto": off when the run fits in half the free memory without it."""

from __future__ import annotations

import pytest
from testkit import tiny_model
from testkit.engine_helpers import events_of, tiny_config, train_briefly
from testkit.tiny_model import write_jsonl

from engine.config import ConfigError, TrainingConfig
from engine.models import memory_estimate as me
from engine.models.checkpointing import AUTO_SHARE, checkpointing_plan


@pytest.fixture
def config(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "rows.jsonl", [{"text": "a b c"}])
    return tiny_config(tiny_model_dir, data, training__gradient_checkpointing="auto", data__max_length=256)


def _without(config, device="cuda") -> int:
    off = config.with_overrides({"training.gradient_checkpointing": False})
    return me.estimate_training_memory(config.model.path, off, device).total_bytes


def test_auto_turns_checkpointing_off_only_when_half_the_free_memory_holds_the_run(config):
    need = _without(config)
    on, why = checkpointing_plan(config.model.path, config, "cuda", int(need / AUTO_SHARE) + 1)
    assert on is False and "no layer is recomputed" in why
    on, why = checkpointing_plan(config.model.path, config, "cuda", int(need / AUTO_SHARE) - 1)
    assert on is True and "more than half" in why
    assert checkpointing_plan(config.model.path, config, "cuda", None)[0] is True  # free memory unknown


def test_a_switch_is_obeyed_whatever_the_free_memory(config):
    for value in (True, False):
        fixed = config.with_overrides({"training.gradient_checkpointing": value})
        assert checkpointing_plan(fixed.model.path, fixed, "cuda", 10**15)[0] is value
        assert checkpointing_plan(fixed.model.path, fixed, "cuda", 1)[0] is value


def test_the_estimate_follows_the_auto_decision(config):
    path, need = config.model.path, _without(config)
    plenty = me.estimate_training_memory(path, config, "cuda", free_bytes=10 * need)
    tight = me.estimate_training_memory(path, config, "cuda", free_bytes=need)
    unknown = me.estimate_training_memory(path, config, "cuda")
    assert plenty.total_bytes == need
    assert tight.part(me.ACTIVATIONS).bytes < plenty.part(me.ACTIVATIONS).bytes
    assert unknown.total_bytes == tight.total_bytes  # no free figure: checkpointing stays on


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_the_setting_is_auto_or_a_switch(value):
    with pytest.raises(ConfigError, match=r"training.gradient_checkpointing"):
        TrainingConfig(gradient_checkpointing=value)


def test_a_run_says_what_auto_decided(tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "facts.jsonl", tiny_model.fact_rows())
    train_briefly(
        tiny_model_dir, data, tmp_path / "run", training__gradient_checkpointing="auto", training__max_steps=2
    )
    [event] = [e for e in events_of(tmp_path / "run", "info") if "gradient_checkpointing" in e]
    # The tiny model needs a few MiB: this machine has far more than twice that free.
    assert event["gradient_checkpointing"] is False
    assert event["message"].startswith("Gradient checkpointing off: ")
