"""The chat pane's prompt sets are eval sets (issue 20): .jsonl files, older .toml sets read and converted."""

from __future__ import annotations

import json

import pytest

from engine.chat import store as chat_store
from engine.chat.prompt_sets import (
    delete_prompt_set,
    edit_item,
    expected_text,
    list_prompt_sets,
    load_prompt_set,
    parse_expected,
    save_prompt_set,
)
from engine.errors import DataError
from engine.eval.sets import parse_item, read_eval_set


def items(*prompts, system=None):
    return [edit_item(None, prompt, system=system) for prompt in prompts]


def test_saved_as_an_eval_set_and_read_back(tmp_path):
    made = [
        edit_item(None, "Capital of Zorvania?", "Quillhaven", "contains", system="Be brief."),
        edit_item(None, "Line one\nline two", system="Be brief."),
        edit_item(None, "2 + 2?", "4", "number", system="Be brief."),
    ]
    saved = save_prompt_set(tmp_path, "Capital cities", made)
    path = tmp_path / "prompt-sets" / "capital-cities.jsonl"
    assert saved.name == saved.slug == "capital-cities" and path.is_file()
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0]) == {
        "prompt": "Capital of Zorvania?",
        "system": "Be brief.",
        "expected": "Quillhaven",
        "scorer": "contains",
    }
    assert read_eval_set(path).items == saved.items  # the eval CLI reads the very same file
    loaded = load_prompt_set(tmp_path, "capital-cities")
    assert loaded.items == saved.items and loaded.system == "Be brief."
    assert loaded.prompts == ["Capital of Zorvania?", "Line one\nline two", "2 + 2?"]
    assert [item.scorer for item in loaded.items] == ["contains", None, "number"]

    twin = save_prompt_set(tmp_path, "Capital Cities!", items("x"))
    assert twin.name == "capital-cities-2"  # a new set never replaces another
    (tmp_path / "prompt-sets" / "bad.jsonl").write_text("{oops\n")
    listed = list_prompt_sets(tmp_path)
    assert [(s.slug, s.prompt_count, s.problem is None) for s in listed] == [
        ("bad", 0, False),
        ("capital-cities", 3, True),
        ("capital-cities-2", 1, True),
    ]
    assert "line 1: invalid JSON" in listed[0].problem
    with pytest.raises(DataError, match="no prompts"):
        save_prompt_set(tmp_path, "Empty", [])


def test_older_toml_sets_are_read_and_replaced_on_save(tmp_path):
    folder = tmp_path / "prompt-sets"
    folder.mkdir()
    (folder / "capital-cities.toml").write_text(
        'format = 1\nname = "Capital cities"\nsystem = "Be brief."\n'
        'prompts = ["Capital of Zorvania?", "Hi"]\n'
    )
    (folder / "broken.toml").write_text("name = [")
    listed = list_prompt_sets(tmp_path)
    assert [(s.slug, s.prompt_count, s.problem is None) for s in listed] == [
        ("broken", 0, False),
        ("capital-cities", 2, True),
    ]
    old = load_prompt_set(tmp_path, "capital-cities")
    assert old.converted and old.prompts == ["Capital of Zorvania?", "Hi"] and old.system == "Be brief."
    chat_store.save_prompt_set_results(
        tmp_path, "capital-cities", "Base model", [{"prompt": "Hi", "reply": "Hello"}]
    )

    first = edit_item(old.items[0], old.items[0].prompt, "Quillhaven", "contains")
    save_prompt_set(tmp_path, "capital-cities", [first, old.items[1]], previous="capital-cities")
    assert sorted(p.name for p in folder.glob("capital-cities.*")) == ["capital-cities.jsonl"]
    again = load_prompt_set(tmp_path, "capital-cities")
    assert not again.converted and again.items[0].expected == "Quillhaven" and again.system == "Be brief."
    assert chat_store.list_prompt_set_results(tmp_path, "capital-cities") == ["Base model"]  # results kept


def test_a_jsonl_set_wins_over_a_toml_of_the_same_name(tmp_path):
    folder = tmp_path / "prompt-sets"
    folder.mkdir()
    (folder / "s.toml").write_text('name = "S"\nprompts = ["old"]\n')
    (folder / "s.jsonl").write_text('{"prompt": "new"}\n')
    assert load_prompt_set(tmp_path, "s").prompts == ["new"]
    assert [s.prompt_count for s in list_prompt_sets(tmp_path)] == [1]


def test_rename_moves_results_and_refuses_a_taken_name(tmp_path):
    save_prompt_set(tmp_path, "first", items("a"))
    save_prompt_set(tmp_path, "other", items("b"))
    chat_store.save_prompt_set_results(tmp_path, "first", "Base model", [{"prompt": "a", "reply": "A"}])
    renamed = save_prompt_set(tmp_path, "Second one", items("a"), previous="first")
    assert renamed.name == "second-one"
    assert [s.slug for s in list_prompt_sets(tmp_path)] == ["other", "second-one"]
    assert chat_store.list_prompt_set_results(tmp_path, "second-one") == ["Base model"]
    with pytest.raises(DataError, match="already exists"):
        save_prompt_set(tmp_path, "other", items("c"), previous="second-one")
    assert load_prompt_set(tmp_path, "second-one").prompts == ["a"]


def test_delete(tmp_path):
    save_prompt_set(tmp_path, "s", items("a"))
    (tmp_path / "prompt-sets" / "s.toml").write_text('prompts = ["old"]\n')
    chat_store.save_prompt_set_results(tmp_path, "s", "Base model", [])
    assert delete_prompt_set(tmp_path, "s") is True
    assert list(tmp_path.joinpath("prompt-sets").glob("s.*")) == []
    assert not (tmp_path / "prompt-sets" / "results" / "s").exists()
    assert delete_prompt_set(tmp_path, "s") is False
    with pytest.raises(DataError, match="does not exist"):
        load_prompt_set(tmp_path, "s")
    with pytest.raises(DataError, match="not a valid name"):
        load_prompt_set(tmp_path, "../../etc/passwd")


def test_edit_item_keeps_what_the_editor_does_not_show():
    chat = parse_item(
        {
            "messages": [
                {"role": "system", "content": "Sys"},
                {"role": "user", "content": "I live in France."},
                {"role": "assistant", "content": "Nice."},
                {"role": "user", "content": "Capital?"},
            ],
            "expected": "4.0",
            "scorer": "number",
            "tolerance": 0.5,
            "category": "facts",
        },
        line=3,
        index=2,
    )
    edited = edit_item(chat, "Its capital?", "Paris", "contains")
    assert [t["content"] for t in edited.messages] == ["Sys", "I live in France.", "Nice.", "Its capital?"]
    assert (edited.expected, edited.scorer, edited.category) == ("Paris", "contains", "facts")
    assert edited.tolerance == 1e-6  # an option of the number scorer is dropped with it
    assert edit_item(chat, "Capital?", system="").system is None
    assert edit_item(chat, "Capital?", system="New").system == "New"
    plain = edit_item(None, "Q", system="S")
    assert edit_item(plain, "Q").system == "S" and edit_item(plain, "Q", system="").system is None
    choice = parse_item({"prompt": "Mammal?", "choices": ["whale", "shark"], "expected": "whale"}, 1, 0)
    assert edit_item(choice, "Mammal?", "shark").choice_index == 1
    assert edit_item(choice, "Mammal?", "whale", "exact").choices == ()
    with pytest.raises(ValueError, match="empty"):
        edit_item(None, "  ")


def test_expected_text_round_trip():
    schema = {"type": "object"}
    item = edit_item(None, "JSON please", schema, "json")
    assert expected_text(item) == '{"type": "object"}'
    assert parse_expected(expected_text(item), "json") == schema
    assert parse_expected("  Paris ", "contains") == "Paris"
    assert parse_expected("", "exact") is None
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_expected("{type: object}", "json")
