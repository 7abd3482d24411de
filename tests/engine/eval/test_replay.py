"""Replay against forgetting: the base's own answers, generated once per model, mixed into training."""

from __future__ import annotations

import json

import pytest
from testkit.engine_helpers import tiny_config
from testkit.tiny_model import fact_rows, write_jsonl

from engine.eval.replay import replay_conversations, replay_count, replay_prompts
from engine.runs.events import read_events


def test_replay_count_is_the_share_of_the_mix():
    assert replay_count(0.0, 100, 80) == 0
    assert replay_count(0.2, 100, 80) == 25  # 25 of 125 rows = 20%
    assert replay_count(0.5, 100, 80) == 80  # capped by the prompts there are
    assert replay_count(0.1, 3, 80) == 1


def test_replay_uses_only_prompts_the_probe_does_not_score(small_probes):
    prompts = replay_prompts()
    assert prompts and all(item.scorer is None for item in prompts)


def _replay_events(run_dir):
    return [e for e in read_events(run_dir / "events.jsonl") if "replay_rows" in e]


@pytest.mark.slow
def test_replay_rows_are_made_once_then_come_from_the_cache(
    small_probes, tiny_model_dir, tmp_path, monkeypatch
):
    from engine.config import QuantizationConfig
    from engine.models.folder import ModelFolder
    from engine.models.loading import load_tokenizer
    from engine.training.recipe import train

    monkeypatch.setenv("WHETSTONE_HOME", str(tmp_path / "home"))
    data = write_jsonl(tmp_path / "facts.jsonl", fact_rows())
    config = tiny_config(tiny_model_dir, data, training__max_steps=2, data__replay_ratio=0.3)
    assert train(config, tmp_path / "first").state == "done"
    [cache_file] = (tmp_path / "home" / "cache" / "eval").glob("replay-*.json")
    assert len(_replay_events(tmp_path / "first")) == 1

    # The cache is what the next run uses: plant finished answers and train again.
    tokenizer = load_tokenizer(config.model)
    planted = tokenizer("Planted answer.", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    cached = json.loads(cache_file.read_text())
    cache_file.write_text(json.dumps({**cached, "answers": [planted] * len(cached["answers"])}))
    assert train(config, tmp_path / "second").state == "done"
    [event] = _replay_events(tmp_path / "second")
    assert event["replay_rows"] == replay_count(0.3, 12, len(replay_prompts())) > 0

    conversations = replay_conversations(  # no model at all: a cache hit never generates
        None,
        tokenizer,
        ModelFolder.read(tiny_model_dir).fingerprint(),
        QuantizationConfig(),
        "cpu",
        tmp_path / "home" / "cache" / "eval",
    )
    assert conversations and all(
        c[-1] == {"role": "assistant", "content": "Planted answer."} for c in conversations
    )
