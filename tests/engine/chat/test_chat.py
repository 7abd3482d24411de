"""Chat engine: streaming replies with stats, stop strings, cancel, seeds; conversation and prompt-set
storage."""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from engine.chat import store as chat_store
from engine.chat.loading import (
    GenerationSettings,
    generate_text,
    load_for_chat,
    start_reply,
    stream_chat,
)
from engine.chat.replies import StopStringFilter
from engine.chat.store import Conversation
from engine.errors import ConfigError, DataError
from engine.models.loading import end_of_turn_ids

MESSAGES = [{"role": "user", "content": "What is the capital of Zorvania?"}]


@pytest.fixture(scope="module")
def chat_model(tiny_model_dir):
    return load_for_chat(str(tiny_model_dir))


def _reference(model, tokenizer, max_new_tokens: int, min_new_tokens: int = 0):
    """Greedy `model.generate` called directly: (prompt length, new token ids, text).

    It runs on a worker thread as start_reply's does: on a busy 2-core machine torch's
    2-thread CPU kernels ran several times slower on the main thread than on a new one.
    """
    import torch

    prompt = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)

    def generate():
        with torch.no_grad():
            return model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                min_new_tokens=min_new_tokens or None,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                eos_token_id=end_of_turn_ids(tokenizer, model),
                pad_token_id=tokenizer.pad_token_id,
            )

    with ThreadPoolExecutor(1) as pool:
        out = pool.submit(generate).result()
    new = out[0, inputs["input_ids"].shape[-1] :].tolist()
    return inputs["input_ids"].shape[-1], new, tokenizer.decode(new, skip_special_tokens=True)


def _greedy_text(chat_model, tokens: int) -> str:
    model, tokenizer = chat_model
    return "".join(
        start_reply(
            model,
            tokenizer,
            MESSAGES,
            GenerationSettings(max_new_tokens=tokens, min_new_tokens=tokens),
        )
    )


# ---------------------------------------------------------------------------- streaming


def test_reply_streams_in_chunks_with_exact_stats(chat_model, no_network):
    model, tokenizer = chat_model
    prompt_len, new_ids, expected = _reference(model, tokenizer, 40)
    stream = start_reply(model, tokenizer, MESSAGES, GenerationSettings(max_new_tokens=40))
    chunks = list(stream)
    assert len(chunks) > 1 and all(chunks)
    assert "".join(chunks) == stream.text == expected
    stats = stream.stats
    assert stats.prompt_tokens == prompt_len and stats.new_tokens == len(new_ids)
    ended_by_eos = new_ids[-1] in end_of_turn_ids(tokenizer, model)
    assert stats.stop_reason == ("end_of_turn" if ended_by_eos else "max_tokens")
    assert 0 < stats.time_to_first_token_s <= stats.seconds
    assert stats.tokens_per_second > 0
    assert set(stats.to_dict()) == {
        "prompt_tokens",
        "new_tokens",
        "time_to_first_token_s",
        "seconds",
        "tokens_per_second",
        "stop_reason",
    }
    assert no_network == []


def test_max_tokens_counts_every_token(chat_model):
    model, tokenizer = chat_model
    stream = start_reply(model, tokenizer, MESSAGES, GenerationSettings(max_new_tokens=20, min_new_tokens=20))
    text = "".join(stream)
    assert stream.stats.new_tokens == 20 and stream.stats.stop_reason == "max_tokens"
    assert text == _reference(model, tokenizer, 20, 20)[2]


def test_cancel_from_another_thread_abandons_the_token_under_way(chat_model):
    # Held, not timed: generation waits inside its 4th forward pass while the test cancels, and no
    # token may come out of that pass. (Stop latency is measured by benchmarks/chat_stop.py.)
    model, tokenizer = chat_model
    passes: list[int] = []
    held, release = threading.Event(), threading.Event()

    def hold_the_fourth_pass(_module, _args) -> None:
        passes.append(len(passes) + 1)
        if len(passes) == 4:
            held.set()
            release.wait(10)

    handle = model.model.layers[0].register_forward_pre_hook(hold_the_fourth_pass)
    try:
        # min_new_tokens makes end-of-turn impossible: uncancelled, this would run for minutes.
        settings = GenerationSettings(max_new_tokens=100_000, min_new_tokens=100_000)
        stream = start_reply(model, tokenizer, MESSAGES, settings)
        chunks: list[str] = []
        reader = threading.Thread(target=lambda: chunks.extend(stream))
        reader.start()
        assert held.wait(30)
        stream.cancel()
        release.set()
        reader.join(10)
    finally:
        release.set()
        handle.remove()
    assert not reader.is_alive() and not stream._thread.is_alive()
    assert stream.stats.stop_reason == "cancelled"
    assert passes == [1, 2, 3, 4] and stream.stats.new_tokens == 3  # the 4th pass was abandoned
    assert "".join(chunks) == stream.text


def test_leaving_the_iteration_early_stops_generation(chat_model):
    model, tokenizer = chat_model
    stream = start_reply(
        model,
        tokenizer,
        MESSAGES,
        GenerationSettings(max_new_tokens=100_000, min_new_tokens=100_000),
    )
    chunks = iter(stream)
    assert next(chunks)
    chunks.close()  # what a `break` out of a for loop does
    assert not stream._thread.is_alive()
    assert stream.stats.stop_reason == "cancelled"


def test_a_cancel_event_passed_in_works_too(chat_model):
    model, tokenizer = chat_model
    cancel = threading.Event()
    cancel.set()
    chunks = list(
        stream_chat(
            model,
            tokenizer,
            MESSAGES,
            GenerationSettings(max_new_tokens=500, min_new_tokens=500),
            cancel,
        )
    )
    assert len("".join(chunks)) < 20  # stopped after the first token


def test_stop_string_ends_the_reply_and_is_never_shown(chat_model):
    model, tokenizer = chat_model
    full = _greedy_text(chat_model, 40)
    # A stop string from the middle of what an unconstrained run produces.
    candidates = [full[i : i + 3] for i in range(8, len(full) - 3) if "\ufffd" not in full[i : i + 3]]
    stop = candidates[len(candidates) // 2]
    settings = GenerationSettings(max_new_tokens=40, min_new_tokens=40, stop_strings=["never-appears", stop])
    stream = start_reply(model, tokenizer, MESSAGES, settings)
    chunks = list(stream)
    text = "".join(chunks)
    assert stop not in text
    assert text == full[: full.index(stop)]
    assert stream.stats.stop_reason == "stop_string" and stream.stats.new_tokens < 40


def test_stop_string_filter_holds_back_possible_prefixes():
    f = StopStringFilter(["STOP", "<end>"])
    assert f.feed("abc ST") == "abc "
    assert f.feed("O") == ""
    assert f.feed("X <e") == "STOX "
    assert f.flush() == "<e"
    g = StopStringFilter(["STOP"])
    out = "".join(g.feed(c) for c in "hello STSTOP world")
    assert out == "hello ST" and g.stopped and g.flush() == ""
    assert StopStringFilter([]).feed("as is") == "as is"


def test_same_seed_gives_the_same_sampled_text(chat_model):
    model, tokenizer = chat_model

    def sample(seed: int) -> str:
        settings = GenerationSettings(
            max_new_tokens=24, min_new_tokens=24, temperature=1.0, top_p=0.95, seed=seed
        )
        return "".join(start_reply(model, tokenizer, MESSAGES, settings))

    first = sample(7)
    assert sample(7) == first
    assert len({first, sample(8), sample(9)}) > 1
    assert first != _greedy_text(chat_model, 24)


def test_seeded_replies_are_reproducible_while_another_reply_runs(chat_model):
    model, tokenizer = chat_model
    settings = GenerationSettings(max_new_tokens=24, min_new_tokens=24, temperature=1.0, seed=3)
    alone = "".join(start_reply(model, tokenizer, MESSAGES, settings))
    streams = [start_reply(model, tokenizer, MESSAGES, settings) for _ in range(2)]
    texts: list[str] = ["", ""]

    def read(i: int) -> None:
        texts[i] = "".join(streams[i])

    readers = [threading.Thread(target=read, args=(i,)) for i in range(2)]
    for r in readers:
        r.start()
    for r in readers:
        r.join(30)
    assert texts == [alone, alone]


def test_generate_text_still_works(chat_model):
    model, tokenizer = chat_model
    prompt_text = _reference(model, tokenizer, 12)[2]
    assert (
        generate_text(model, tokenizer, MESSAGES[0]["content"], GenerationSettings(max_new_tokens=12))
        == prompt_text
    )


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("temperature", -0.1, "0 (greedy) or more"),
        ("top_p", 0.0, "more than 0 and at most 1"),
        ("top_p", 1.5, "more than 0 and at most 1"),
        ("top_k", -1, "0 (off) or more"),
        ("max_new_tokens", 0, "at least 1"),
        ("repetition_penalty", 0.0, "more than 0"),
        ("min_new_tokens", 300, "between 0 and max_new_tokens"),
        ("seed", -5, "between 0 and"),
        ("stop_strings", [""], "non-empty strings"),
        ("temperature", "hot", "a number"),
    ],
)
def test_settings_reject_impossible_values(field, value, words):
    with pytest.raises(ConfigError) as err:
        GenerationSettings(**{field: value})
    assert f"generation.{field}" in err.value.message and words in err.value.message


def test_settings_round_trip_through_a_dict():
    settings = GenerationSettings(
        max_new_tokens=64, temperature=0.7, top_k=40, seed=11, stop_strings=["\n\n"]
    )
    assert GenerationSettings.from_dict(settings.to_dict() | {"from_the_future": 1}) == settings
    assert "seed" not in GenerationSettings().to_dict()


# ---------------------------------------------------------------------------- storage


def _times(monkeypatch):
    ticks = iter(range(10, 60))
    monkeypatch.setattr(chat_store, "_now", lambda: f"2025-03-14T09:00:{next(ticks):02d}+00:00")


def test_conversation_round_trip(tmp_path, monkeypatch):
    _times(monkeypatch)
    project = tmp_path / "proj"
    adapter = project / "runs" / "r1" / "adapter"
    question = (
        "Please explain, in a lot of detail,   how the capital of Zorvania came to be what it is today?"
    )
    conv = Conversation(
        model="/models/base",
        adapter=str(adapter),
        settings=GenerationSettings(temperature=0.5, seed=3, stop_strings=["###"]),
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": question},
            {
                "role": "assistant",
                "content": "Quillhaven.",
                "stats": {"new_tokens": 4, "stop_reason": "end_of_turn"},
            },
        ],
    )
    path = chat_store.save_conversation(project, conv)
    assert path == project / "chats" / f"{conv.id}.json"
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", conv.id)
    assert len(conv.title) <= 60 and conv.title.startswith("Please explain, in a lot of detail, how")
    stored = json.loads(path.read_text())
    assert stored["adapter"] == "runs/r1/adapter" and stored["model"] == "/models/base"
    loaded = chat_store.load_conversation(project, conv.id)
    assert loaded == conv
    assert loaded.adapter == str(adapter.resolve())
    created = loaded.created
    loaded.messages.append({"role": "user", "content": "And why?"})
    chat_store.save_conversation(project, loaded)
    again = chat_store.load_conversation(project, conv.id)
    assert again.created == created and again.updated > created and len(again.messages) == 4
    assert not list((project / "chats").glob(".*"))  # no temp files left


def test_conversations_listed_newest_first_with_damaged_ones(tmp_path, monkeypatch):
    _times(monkeypatch)
    empty = Conversation(model="m")
    chat_store.save_conversation(tmp_path, empty)
    assert empty.title == "" and chat_store.list_conversations(tmp_path)[0].title == "New chat"
    empty.messages.append({"role": "user", "content": "later"})
    chat_store.save_conversation(tmp_path, empty)
    assert chat_store.load_conversation(tmp_path, empty.id).title == "later"
    assert chat_store.delete_conversation(tmp_path, empty.id)
    old = Conversation(model="m", messages=[{"role": "user", "content": "old"}])
    new = Conversation(model="m", messages=[{"role": "user", "content": "new"}])
    chat_store.save_conversation(tmp_path, old)
    chat_store.save_conversation(tmp_path, new)
    (tmp_path / "chats" / "broken.json").write_text("{not json")
    (tmp_path / "chats" / "wrong-role.json").write_text(
        json.dumps({"format": 1, "messages": [{"role": "robot", "content": "x"}]})
    )
    listed = chat_store.list_conversations(tmp_path)
    good = [s for s in listed if s.problem is None]
    assert [s.title for s in good] == ["new", "old"] and good[0].message_count == 1
    problems = {s.id: s.problem for s in listed if s.problem}
    assert set(problems) == {"broken", "wrong-role"} and "robot" in problems["wrong-role"]
    with pytest.raises(DataError):
        chat_store.load_conversation(tmp_path, "broken")
    assert chat_store.delete_conversation(tmp_path, old.id) is True
    assert chat_store.delete_conversation(tmp_path, old.id) is False
    with pytest.raises(DataError, match="not a valid name"):
        chat_store.load_conversation(tmp_path, "../../etc/passwd")
    assert chat_store.list_conversations(tmp_path / "nowhere") == []


def test_prompt_set_results(tmp_path):
    # The sets themselves are eval sets: tests/engine/eval/test_prompt_sets.py.
    results = [{"prompt": "Capital of Zorvania?", "reply": "Quillhaven.", "stats": {"new_tokens": 4}}]
    out = chat_store.save_prompt_set_results(tmp_path, "capital-cities", "run 1 / checkpoint-100", results)
    assert out == tmp_path / "prompt-sets" / "results" / "capital-cities" / "run-1-checkpoint-100.json"
    assert chat_store.load_prompt_set_results(tmp_path, "capital-cities", "run 1 / checkpoint-100") == results
    assert chat_store.list_prompt_set_results(tmp_path, "capital-cities") == ["run 1 / checkpoint-100"]
    with pytest.raises(DataError, match="No results"):
        chat_store.load_prompt_set_results(tmp_path, "capital-cities", "base")


def test_conversation_to_row():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello.", "stats": {"new_tokens": 3}},
    ]
    assert chat_store.conversation_to_row(messages) == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
        ]
    }
    with pytest.raises(DataError, match="must end with an assistant reply"):
        chat_store.conversation_to_row(messages + [{"role": "user", "content": "More?"}])
    with pytest.raises(DataError, match="empty"):
        chat_store.conversation_to_row(messages[:2] + [{"role": "assistant", "content": "  "}])
    with pytest.raises(DataError, match="role 'tool'"):
        chat_store.conversation_to_row([{"role": "tool", "content": "x"}] + messages)


def test_cancel_does_not_wait_for_a_slow_forward_pass_to_finish(chat_model, monkeypatch):
    """On a CPU one token of a real model can take longer than 200 ms: cancel acts between layers."""
    model, tokenizer = chat_model
    layers = model.model.layers
    entered: list[int] = []
    held, release = threading.Event(), threading.Event()
    real_forward = type(layers[1]).forward

    def slow_forward(self, *args, **kwargs):
        entered.append(next(i for i, layer in enumerate(layers) if layer is self))
        if self is layers[0]:
            held.set()
            release.wait(10)  # stands in for a big layer still computing when Stop is pressed
        return real_forward(self, *args, **kwargs)

    monkeypatch.setattr(type(layers[1]), "forward", slow_forward)
    stream = start_reply(model, tokenizer, MESSAGES, GenerationSettings(max_new_tokens=50, min_new_tokens=50))
    assert held.wait(10)
    stream.cancel()
    release.set()
    text = "".join(stream)
    assert entered == [0]  # the layer under way finished; the next one never started
    assert stream.stats.stop_reason == "cancelled" and stream.stats.new_tokens == 0
    assert text == stream.text


def test_a_compare_conversation_keeps_its_other_side(tmp_path):
    project = tmp_path / "proj"
    side_b = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Base says hi."}]
    conv = Conversation(
        model="/models/base",
        adapter=str(project / "runs" / "r1" / "adapter"),
        messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Tuned."}],
        compare={"adapter": None, "messages": side_b},
    )
    chat_store.save_conversation(project, conv)
    loaded = chat_store.load_conversation(project, conv.id)
    assert loaded.compare == {"adapter": None, "messages": side_b}
    path = project / "chats" / f"{conv.id}.json"
    data = json.loads(path.read_text())
    data["compare"] = "oops"
    path.write_text(json.dumps(data))
    assert chat_store.list_conversations(project)[0].problem  # listed with its problem, not a crash
