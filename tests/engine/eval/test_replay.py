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
    from engine.eval.probes import forgetting_set, general_set

    prompts = replay_prompts()
    assert prompts and all(item.scorer is None for item in prompts)
    assert {item.prompt for item in general_set().items} <= {item.prompt for item in prompts}
    assert {item.category for item in general_set().items} >= {"arithmetic", "facts", "formatting"}
    scored = {item.prompt for item in forgetting_set().items if item.scorer}
    assert scored and not scored & {item.prompt for item in prompts}


def test_the_shipped_general_set_never_repeats_a_probe_prompt():
    """Replay may teach the probe's categories, never its items: the probe must still measure."""
    from engine.eval.probes import forgetting_set, general_set

    general = general_set()
    assert len(general.items) >= 100 and not general.problems
    probe = {item.prompt.casefold() for item in forgetting_set().items}
    assert not probe & {item.prompt.casefold() for item in general.items}


def _replay_events(run_dir):
    return [e for e in read_events(run_dir / "events.jsonl") if "replay_rows" in e]


def _conversations(tokenizer, model_dir, cache_dir, count, model=None, seed=0):
    from engine.config import QuantizationConfig
    from engine.models.folder import ModelFolder

    fingerprint = ModelFolder.read(model_dir).fingerprint()
    return replay_conversations(
        model, tokenizer, fingerprint, QuantizationConfig(), "cpu", count, seed, cache_dir
    )


@pytest.mark.slow
def test_replay_rows_are_made_once_then_come_from_the_cache(
    small_probes, tiny_model_dir, tmp_path, monkeypatch
):
    from engine.models.loading import load_tokenizer
    from engine.training.recipe import train

    monkeypatch.setenv("WHETSTONE_HOME", str(tmp_path / "home"))
    data = write_jsonl(tmp_path / "facts.jsonl", fact_rows())
    config = tiny_config(tiny_model_dir, data, training__max_steps=2, data__replay_ratio=0.3)
    assert train(config, tmp_path / "first").state == "done"
    [cache_file] = (tmp_path / "home" / "cache" / "eval").glob("replay-*.json")
    assert len(_replay_events(tmp_path / "first")) == 1
    wanted = replay_count(0.3, 12, len(replay_prompts()))
    answered = json.loads(cache_file.read_text())["answers"]
    assert wanted <= len(answered)  # the tiny model seldom finishes: it may take every prompt

    # The cache is what the next run uses: plant finished answers and train again.
    tokenizer = load_tokenizer(config.model)
    planted = tokenizer("Planted answer.", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    cached = json.loads(cache_file.read_text())
    cache_file.write_text(json.dumps({**cached, "answers": dict.fromkeys(cached["answers"], planted)}))
    assert train(config, tmp_path / "second").state == "done"
    [event] = _replay_events(tmp_path / "second")
    assert event["replay_rows"] == wanted > 0

    cache_dir = tmp_path / "home" / "cache" / "eval"
    conversations = _conversations(  # no model: a cache hit
        tokenizer, tiny_model_dir, cache_dir, wanted, seed=config.data.seed
    )
    assert len(conversations) == wanted
    assert all(c[-1] == {"role": "assistant", "content": "Planted answer."} for c in conversations)


def test_replay_answers_only_the_prompts_it_needs_and_caches_each(small_probes, tiny_model_dir, tmp_path):
    """A larger share later answers only the new prompts: the cached ones are never generated again."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = replay_prompts()
    generated: list[int] = []

    class CountingModel:  # answers "ok<end>" to every prompt, and counts how many it was asked
        training = False

        def eval(self):
            pass

        def train(self, mode=True):
            pass

    def fake_generate(self, prompt_ids, budget):
        generated.append(len(prompt_ids))
        ok = tokenizer("ok", add_special_tokens=False)["input_ids"]
        return [ok + [tokenizer.eos_token_id] for _ in prompt_ids]

    import engine.eval.scoring as scoring

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scoring.ScoringModel, "__init__", _plain_scoring_init(tokenizer))
        patch.setattr(scoring.ScoringModel, "generate", fake_generate)
        first = _conversations(tokenizer, tiny_model_dir, tmp_path, 2, CountingModel(), seed=3)
        again = _conversations(tokenizer, tiny_model_dir, tmp_path, 2, CountingModel(), seed=3)
        more = _conversations(tokenizer, tiny_model_dir, tmp_path, 4, CountingModel(), seed=3)
    assert len(first) == 2 and again == first and more[:2] == first and len(more) == 4
    assert len(prompts) > 6
    # Two wanted and one spare; the second call read the cache; the third took the first 6 prompts of
    # the same order (4 wanted, 2 spare) and answered only the 3 it had not cached.
    assert generated == [3, 3]


def _plain_scoring_init(tokenizer):
    def init(self, model, _tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.eos_ids = {tokenizer.eos_token_id}

    return init


def test_the_demo_ships_its_answers_to_every_replay_prompt():
    """The demo's first run generates no replay answer; a changed prompt set must regenerate the file
    (scripts/demo-replay-answers)."""
    from engine.models.demo import demo_replay_answers_path

    answers = json.loads(demo_replay_answers_path().read_text(encoding="utf-8"))["answers"]
    assert set(answers) == {item.prompt for item in replay_prompts()}
    finished = [text for text in answers.values() if text is not None]
    assert len(finished) >= 100 and all(text.strip() == text and text for text in finished)


def test_shipped_answers_are_used_for_the_demo_model_only(tiny_model_dir, tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    from engine.models import demo

    assert demo.demo_replay_answers(tiny_model_dir) == {}  # any other model generates its own
    monkeypatch.setattr(demo, "demo_model_dir", lambda: tiny_model_dir)
    shipped = demo.demo_replay_answers(tiny_model_dir)
    assert len(shipped) == len(replay_prompts())

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    planted = {prompt: f"Shipped answer {i}." for i, prompt in enumerate(shipped)}
    first = next(iter(planted))
    planted[first] = None  # did not finish: never a row
    conversations = _conversations_shipped(tokenizer, tiny_model_dir, tmp_path, 5, planted)
    assert len(conversations) == 5  # no model was needed: nothing was generated
    assert all(c[-1]["content"].startswith("Shipped answer") for c in conversations)
    assert all(c[0]["content"] != first for c in conversations)


def _conversations_shipped(tokenizer, model_dir, cache_dir, count, shipped):
    from engine.config import QuantizationConfig
    from engine.models.folder import ModelFolder

    fingerprint = ModelFolder.read(model_dir).fingerprint()
    return replay_conversations(
        None, tokenizer, fingerprint, QuantizationConfig(), "cpu", count, 0, cache_dir, shipped=shipped
    )
