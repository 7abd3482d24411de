"""Text scorers of eval items (issue 20): exact, contains, regex, number, json; edge cases of each."""

from __future__ import annotations

import pytest

from engine.eval.scorers import extract_json, first_number, normalise, parse_number, score_reply
from engine.eval.sets import parse_item


def item(**fields):
    return parse_item({"prompt": "Q?", **fields}, line=1, index=0)


def passes(reply: str, **fields) -> bool | None:
    return score_reply(item(**fields), reply)


# ---- exact ----


@pytest.mark.parametrize(
    ("reply", "expected", "result"),
    [
        ("Paris", "Paris", True),
        ("  paris.  ", "Paris", True),  # trimmed, case-folded, trailing "." dropped
        ("PARIS!", "paris", True),
        ("Paris", "Paris.", True),  # dropped on both sides
        ("New   York\n", "new york", True),  # whitespace collapsed
        ("Paris, France", "Paris", False),
        ("", "Paris", False),  # an empty reply
        ("Paris?", "Paris", False),  # only "." and "!" are dropped
    ],
)
def test_exact(reply, expected, result):
    assert passes(reply, expected=expected, scorer="exact") is result


def test_exact_is_the_default_scorer_when_expected_is_given():
    assert item(expected="4").scorer == "exact"
    assert passes("4.", expected="4") is True


def test_exact_case_sensitive():
    assert passes("paris", expected="Paris", scorer="exact", case_sensitive=True) is False
    assert passes("Paris.", expected="Paris", scorer="exact", case_sensitive=True) is True


def test_normalise():
    assert normalise("  Hello\tWorld!  ") == "hello world"
    assert normalise("Straße.", case_sensitive=False) == "strasse"  # casefold, not lower
    assert normalise("") == ""


# ---- contains ----


def test_contains():
    fields = {"expected": "Paris", "scorer": "contains"}
    assert passes("The capital of France is Paris.", **fields) is True
    assert passes("the capital is PARIS", **fields) is True
    assert passes("It is Lyon.", **fields) is False
    assert passes("", **fields) is False
    assert passes("the capital is PARIS", **fields, case_sensitive=True) is False
    assert passes("capital:   New\n York", expected="new york", scorer="contains") is True


# ---- regex ----


def test_regex_search_and_full():
    assert passes("The answer is 42, surely.", expected=r"\b42\b", scorer="regex") is True
    assert passes("The answer is 42.", expected=r"\d+", scorer="regex", match="full") is False
    assert passes("  42 \n", expected=r"\d+", scorer="regex", match="full") is True  # trimmed reply
    assert passes("", expected=r"\d+", scorer="regex") is False


def test_regex_case():
    assert passes("YES", expected="yes", scorer="regex") is True
    assert passes("YES", expected="yes", scorer="regex", case_sensitive=True) is False


# ---- number ----


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("4", 4.0),
        ("The answer is 4.", 4.0),
        ("3 apples and 5 pears", 3.0),  # the first number
        ("It is -12 degrees", -12.0),
        ("It is \u22123 degrees", -3.0),  # a Unicode minus sign
        ("pi is about 3.14159", 3.14159),
        ("That costs 1,234 euros", 1234.0),
        ("1,234,567.89", 1234567.89),
        ("Avogadro: 6.02e23", 6.02e23),
        ("small: 1.5E-3", 0.0015),
        ("half is .5", 0.5),
        ("+7", 7.0),
        ("COVID-19 started", 19.0),  # a hyphen after a word is not a minus
        ("1,23", 1.0),  # not a thousands group
        ("12,3456", 12.0),
        ("", None),
        ("no numbers here", None),
        ("H2O", None),  # digits inside a word are not a number
    ],
)
def test_first_number(text, number):
    assert first_number(text) == (pytest.approx(number) if number is not None else None)


def test_number_scorer():
    assert passes("2 + 2 = 4", expected="4", scorer="number") is False  # the FIRST number is 2
    assert passes("It is 4.", expected=4, scorer="number") is True
    assert passes("4.0000001", expected="4", scorer="number") is True  # within the default 1e-6
    assert passes("4.001", expected="4", scorer="number") is False
    assert passes("4.001", expected="4", scorer="number", tolerance=0.01) is True
    assert passes("3.98", expected="4", scorer="number", tolerance=0.01) is False
    assert passes("Total: 1,000", expected="1000", scorer="number") is True
    assert passes("Total: 1000", expected="1,000", scorer="number") is True
    assert passes("-2.5", expected=-2.5, scorer="number") is True
    assert passes("", expected="4", scorer="number") is False  # no number: fail
    assert passes("four", expected="4", scorer="number") is False


def test_number_scorer_can_read_the_last_number():
    assert passes("8 + 7 is 15.", expected=15, scorer="number", pick="last") is True
    assert passes("15, not 8 + 6", expected=15, scorer="number", pick="last") is False
    assert passes("no digits", expected=15, scorer="number", pick="last") is False
    with pytest.raises(ValueError, match="pick"):
        item(expected=15, scorer="number", pick="middle")
    with pytest.raises(ValueError, match="only for the number scorer"):
        item(expected="x", scorer="exact", pick="last")
    assert item(expected=15, scorer="number", pick="last").to_json()["pick"] == "last"


def test_parse_number():
    assert parse_number(" -1,500.25 ") == -1500.25
    assert parse_number(3) == 3.0
    for bad in ("four", "4 apples", True, None, "1e999", [1]):
        with pytest.raises(ValueError):
            parse_number(bad)


# ---- json ----


def test_extract_json():
    assert extract_json('{"a": 1}') == {"a": 1}
    assert extract_json("  [1, 2]\n") == [1, 2]
    assert extract_json('Sure:\n```json\n{"name": "Ada"}\n```\nDone.') == {"name": "Ada"}
    assert extract_json('```JSON {"x": [true]} ```') == {"x": [True]}
    assert extract_json('Here you go: {"a": {"b": 2}} - hope it helps') == {"a": {"b": 2}}
    assert extract_json('Note [see above] then {"ok": true}') == {"ok": True}  # first span that parses
    assert extract_json("null") is None  # JSON null is a value
    for bad in ("", "not json", "{'a': 1}", '{"a": 1', "```json\n{bad}\n```"):
        with pytest.raises(ValueError):
            extract_json(bad)


def test_extract_json_survives_deep_nesting():
    with pytest.raises(ValueError):
        extract_json("[" * 50_000 + "]" * 50_000)
    with pytest.raises(ValueError):
        extract_json("text " + "{" * 50_000)


def test_json_scorer_without_schema():
    assert passes('{"a": 1}', scorer="json") is True
    assert passes("The result: ```json\n[1, 2, 3]\n```", scorer="json") is True
    assert passes("{a: 1}", scorer="json") is False  # invalid JSON
    assert passes("", scorer="json") is False


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
}


def test_json_scorer_with_schema():
    assert passes('{"name": "Ada", "age": 36}', scorer="json", expected=SCHEMA) is True
    assert passes('Here:\n```json\n{"name": "Ada", "age": 36}\n```', scorer="json", expected=SCHEMA) is True
    assert passes('{"name": "Ada"}', scorer="json", expected=SCHEMA) is False  # missing "age"
    assert passes('{"name": "Ada", "age": -1}', scorer="json", expected=SCHEMA) is False
    assert passes('{"name": "Ada", "age": "36"}', scorer="json", expected=SCHEMA) is False
    assert passes("not json", scorer="json", expected=SCHEMA) is False


def test_json_schema_with_local_references():
    schema = {
        "$defs": {"name": {"type": "string", "minLength": 1}},
        "type": "array",
        "items": {"$ref": "#/$defs/name"},
    }
    assert passes('["Ada", "Alan"]', scorer="json", expected=schema) is True
    assert passes('["Ada", ""]', scorer="json", expected=schema) is False


def test_json_schema_on_a_deeply_nested_reply_fails_without_crashing():
    deep = "[" * 90 + "]" * 90
    assert passes(deep, scorer="json", expected={"type": "array"}) is True
    assert passes(deep, scorer="json", expected={"type": "object"}) is False


# ---- the rest ----


def test_unscored_item_and_choice():
    assert item().scorer is None
    assert passes("anything") is None  # shown, not scored
    with pytest.raises(ValueError, match="log-likelihood"):
        passes("a whale", choices=["a whale", "a shark"], expected="a whale")
