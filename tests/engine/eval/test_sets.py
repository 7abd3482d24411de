"""Reading and writing eval set files (issue 20): bad lines are problems with line numbers, a set
with nothing usable is one clear DataError, and what is written reads back equal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.errors import DataError
from engine.eval.sets import EvalItem, parse_item, read_eval_set, write_eval_set

GOOD = [
    {"prompt": "What is 2 + 2?", "expected": "4", "scorer": "number"},
    {
        "messages": [
            {"role": "user", "content": "I live in France."},
            {"role": "assistant", "content": "Nice!"},
            {"role": "user", "content": "What is its capital?"},
        ],
        "expected": "Paris",
        "scorer": "contains",
        "system": "You are terse.",
        "name": "capital",
        "category": "facts",
    },
    {"prompt": "Which is a mammal?", "choices": ["a whale", "a shark"], "expected": "a whale"},
    {"prompt": "Say hi."},
    {
        "prompt": "Give a person as JSON.",
        "scorer": "json",
        "expected": {"type": "object", "required": ["name"]},
    },
    {"prompt": "Spell it.", "expected": "^A-?B$", "scorer": "regex", "match": "full", "case_sensitive": True},
    {"prompt": "Pi?", "expected": 3.14, "scorer": "number", "tolerance": 0.01},
    {"prompt": "Pick", "choices": ["x", "y", "z"], "expected": 2, "scorer": "choice"},
]


def write_lines(path: Path, lines: list) -> Path:
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_file(tmp_path):
    found = read_eval_set(write_lines(tmp_path / "facts.jsonl", GOOD))
    assert found.name == "facts"
    assert found.problems == []
    assert [item.index for item in found.items] == list(range(len(GOOD)))
    assert [item.line for item in found.items] == list(range(1, len(GOOD) + 1))
    number, chat, choice, unscored, schema, regex, pi, pick = found.items
    assert number.prompt == "What is 2 + 2?" and number.messages == (
        {"role": "user", "content": number.prompt},
    )
    assert [turn["role"] for turn in chat.messages] == ["system", "user", "assistant", "user"]
    assert chat.prompt == "What is its capital?" and chat.system == "You are terse."
    assert (chat.name, chat.category) == ("capital", "facts")
    assert choice.scorer == "choice" and choice.choices == ("a whale", "a shark") and choice.choice_index == 0
    assert unscored.scorer is None and unscored.system is None
    assert schema.expected == {"type": "object", "required": ["name"]}
    assert (regex.match, regex.case_sensitive) == ("full", True)
    assert pi.tolerance == 0.01
    assert pick.choice_index == 2
    assert found.scored == len(GOOD) - 1
    assert read_eval_set(tmp_path / "facts.jsonl", name="Facts").name == "Facts"


def test_blank_lines_bom_and_crlf(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"prompt": "a"}\r\n\r\n   \n{"prompt": "b\xe2\x80\xa8c"}\r\n')
    found = read_eval_set(path)
    assert [(item.line, item.prompt) for item in found.items] == [(1, "a"), (4, "b\u2028c")]
    assert found.problems == []


def test_bad_lines_are_problems_with_their_line_numbers(tmp_path):
    lines = [
        GOOD[0],  # 1
        '{"prompt": "x", "expectd": "y"}',  # 2: unknown key
        "not json",  # 3
        "",  # 4: blank, skipped
        GOOD[3],  # 5
        '["an", "array"]',  # 6
        "[" * 5000 + "]" * 5000,  # 7: nested far too deep
        '{"prompt": "x", "scorer": "fuzzy", "expected": "y"}',  # 8
        GOOD[2],  # 9
    ]
    found = read_eval_set(write_lines(tmp_path / "mixed.jsonl", lines))
    assert [(item.index, item.line) for item in found.items] == [(0, 1), (1, 5), (2, 9)]
    assert [problem.line for problem in found.problems] == [2, 3, 6, 7, 8]
    messages = [str(problem) for problem in found.problems]
    assert messages[0] == "line 2: unknown key 'expectd' (did you mean 'expected'?)"
    assert messages[1].startswith("line 3: invalid JSON")
    assert messages[2] == "line 6: the line is an array, not an object"
    assert "nested more than" in messages[3]
    assert "unknown scorer 'fuzzy'" in messages[4]


def test_huge_nesting_line_does_not_crash(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text('{"prompt": "ok"}\n{"prompt": "x", "expected": ' + "[" * 200_000 + "]" * 200_000 + "}\n")
    found = read_eval_set(path)
    assert len(found.items) == 1 and [problem.line for problem in found.problems] == [2]


def test_nothing_usable_is_one_data_error_with_line_numbers(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", ["{oops", '{"prompt": ""}', '{"expected": "4"}'])
    with pytest.raises(DataError) as caught:
        read_eval_set(path)
    text = caught.value.one_line()
    assert str(path) in text and "no usable item" in text
    assert "line 1: invalid JSON" in text and 'line 2: "prompt" is empty' in text
    assert 'line 3: no "prompt"' in text
    assert caught.value.hint  # says what to fix


def test_many_problems_are_cut_short(tmp_path):
    with pytest.raises(DataError, match=r"line 5: .*\(and 3 more\)") as caught:
        read_eval_set(write_lines(tmp_path / "bad.jsonl", ["nope"] * 8))
    assert "line 6" not in caught.value.message


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n  \n")
    with pytest.raises(DataError, match="is empty"):
        read_eval_set(path)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_eval_set(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="is a folder"):
        read_eval_set(tmp_path)
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="pipe.jsonl"):  # refused before anything opens it (would block)
        read_eval_set(fifo)
    if os.name == "posix" and os.geteuid() != 0:
        locked = write_lines(tmp_path / "locked.jsonl", GOOD[:1])
        locked.chmod(0)
        with pytest.raises(DataError, match="permission denied"):
            read_eval_set(locked)


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"not UTF-8 text \(line 2") as caught:
        read_eval_set(path)
    assert "UTF-8" in caught.value.hint


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"prompt": "x", "messages": [{"role": "user", "content": "y"}]}, "not both"),
        ({"messages": []}, "non-empty list"),
        ({"messages": [{"role": "robot", "content": "y"}]}, "role 'robot'"),
        (
            {"messages": [{"role": "user", "content": "y"}, {"role": "assistant", "content": "z"}]},
            "last message",
        ),
        ({"messages": [{"role": "user", "content": "  "}]}, "messages[0] content is empty"),
        ({"messages": [{"role": "user", "content": "y", "name": "n"}]}, "unknown key 'name'"),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]},
            "first message",
        ),
        (
            {
                "system": "s",
                "messages": [{"role": "system", "content": "t"}, {"role": "user", "content": "u"}],
            },
            "twice",
        ),
        ({"prompt": 4}, '"prompt" must be a string, not a number'),
        ({"prompt": "x", "expected": 4}, 'use "scorer": "number"'),
        ({"prompt": "x", "scorer": "contains"}, 'needs "expected"'),
        ({"prompt": "x", "scorer": "number", "expected": "four"}, "'four' is not a number"),
        ({"prompt": "x", "scorer": "json", "expected": {"type": "nonsense"}}, "not a valid JSON Schema"),
        ({"prompt": "x", "scorer": "json", "expected": "an object"}, "must be an object"),
        (
            {"prompt": "x", "scorer": "json", "expected": {"$ref": "https://example.com/s.json"}},
            "points outside",
        ),
        (
            {"prompt": "x", "scorer": "json", "expected": {"items": {"$ref": "#/$defs/nope"}}},
            "points outside",
        ),
        ({"prompt": "x", "choices": ["a"], "expected": "a"}, "at least 2"),
        ({"prompt": "x", "choices": ["a", "a"], "expected": "a"}, "same choice twice"),
        ({"prompt": "x", "choices": ["a", ""], "expected": "a"}, "choices[1] is empty"),
        ({"prompt": "x", "choices": ["a", "b"], "expected": "c"}, "not one of"),
        ({"prompt": "x", "choices": ["a", "b"], "expected": 2}, "index 2 is not in 0..1"),
        ({"prompt": "x", "choices": ["a", "b"], "expected": True}, "not true/false"),
        ({"prompt": "x", "scorer": "choice", "expected": "a"}, 'needs "choices"'),
        ({"prompt": "x", "choices": ["a", "b"], "expected": "a", "scorer": "exact"}, "only for the choice"),
        ({"prompt": "x", "scorer": "regex", "expected": "(unclosed"}, "does not compile"),
        ({"prompt": "x", "scorer": "regex", "expected": "a", "match": "whole"}, '"match" must be'),
        ({"prompt": "x", "scorer": "number", "expected": 1, "tolerance": -1}, "must be >= 0"),
        (
            {"prompt": "x", "scorer": "number", "expected": 1, "tolerance": "1"},
            '"tolerance" must be a number',
        ),
        ({"prompt": "x", "expected": "y", "tolerance": 1}, "only for the number scorer"),
        ({"prompt": "x", "case_sensitive": True}, "this item has no scorer"),
        ({"prompt": "x", "expected": "y", "case_sensitive": "yes"}, "true or false"),
        ({"prompt": "x", "name": 3}, '"name" must be a string'),
        ({"prompt": "x", "foo": 1, "bar": 2}, "unknown keys 'foo', 'bar'"),
    ],
)
def test_bad_items(obj, message):
    with pytest.raises(ValueError) as caught:
        parse_item(obj, line=1, index=0)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_round_trip(tmp_path):
    path = tmp_path / "sets" / "round.jsonl"
    original = read_eval_set(write_lines(tmp_path / "round.jsonl", GOOD))
    write_eval_set(path, original.items)
    again = read_eval_set(path)
    assert again.items == original.items
    assert again.problems == []
    # Written as the file form, with defaults left out.
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert first == {"prompt": "What is 2 + 2?", "expected": "4", "scorer": "number"}


def test_to_json_keeps_a_single_turn_with_system_as_prompt():
    item = parse_item(
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]}, 3, 0
    )
    assert item.to_json() == {"prompt": "q", "system": "s"}
    assert parse_item(item.to_json(), 3, 0) == item


def test_write_is_atomic_and_keeps_unicode(tmp_path):
    path = tmp_path / "u.jsonl"
    write_eval_set(path, [EvalItem(0, 1, ({"role": "user", "content": "Grüße 🙂"},), "ja", "exact")])
    assert "Grüße 🙂" in path.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["u.jsonl"]  # no temp file left behind


def test_the_demo_fact_set_scores_the_answer_not_a_word_in_it():
    """Real demo-run answers: "contains network" failed a right "No" and passed a wrong "Yes"."""
    from engine.eval.scorers import score_reply
    from engine.models.demo import demo_eval_sets

    [path] = demo_eval_sets()
    items = {item.name: item for item in read_eval_set(path, name="facts").items}
    assert len(items) == 10 and all(item.scorer for item in items.values())
    network = items["network"]
    assert score_reply(network, "No. Whetstone works fully offline, so your data never leaves your machine.")
    assert score_reply(network, "Whetstone never touches the network: models, data and training stay here.")
    wrong = "Yes. Whetstone keeps your data, but it also stores it on a server in your network."
    assert not score_reply(network, wrong)


def test_the_demo_fact_set_asks_in_words_the_demo_data_never_uses():
    """The facts score learning, not recall of a training question: no training question is a copy
    or a near copy (word overlap, Jaccard, at most 0.7; the closest pair today is 0.57)."""
    import re

    from engine.models.demo import demo_dataset_path, demo_eval_sets

    def words(text: str) -> set[str]:
        return set(re.findall(r"[a-z0-9.']+", text.casefold()))

    [eval_set] = demo_eval_sets()
    asked = [json.loads(line)["prompt"] for line in eval_set.read_text().splitlines() if line.strip()]
    questions = [
        message["content"]
        for line in demo_dataset_path().read_text().splitlines()
        if line.strip()
        for message in json.loads(line)["messages"]
        if message["role"] == "user"
    ]
    assert len(asked) == 10 and len(questions) >= 100
    for prompt in asked:
        for question in questions:
            overlap = len(words(prompt) & words(question)) / len(words(prompt) | words(question))
            assert overlap <= 0.7, (prompt, question)
