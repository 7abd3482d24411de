"""Typed names: no hidden characters anywhere; folder names also avoid what file systems refuse."""

from __future__ import annotations

import pytest

from engine.errors import UserError
from engine.util.names import check_display_name, check_folder_name, hidden_character


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("line\nbreak", "U+000A"),
        ("evil\u202etxt.exe", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ("zero\u200bwidth", "U+200B"),
        ("bom\ufeff", "U+FEFF"),
        ("para\u2029graph", "U+2029"),
    ],
)
def test_hidden_characters_are_refused_and_named(name, shown):
    with pytest.raises(UserError) as info:
        check_display_name(name, "project name")
    assert shown in info.value.message and "one line" in info.value.hint


def test_joiners_and_ordinary_text_are_fine():
    for name in ("Ünïcödé 日本語", "family 👨\u200d👩\u200d👧", "نام\u200cها"):
        assert check_display_name(f"  {name} ", "project name") == name
    assert hidden_character("plain") is None


@pytest.mark.parametrize(
    "name",
    ["con", "NUL.txt", "com1", "lpt9.gguf", ".hidden", "a/b", "a:b", "end.", " x", "x\ny", "", "é" * 101],
)
def test_folder_names_refused(name):
    with pytest.raises(UserError):
        check_folder_name(name, "model name")


def test_folder_names_allowed():
    for name in ("qwen2.5-0.5b", "My model", "console", "con-artist", "com10"):
        assert check_folder_name(name, "model name") == name
