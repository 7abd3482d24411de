"""Names a person types that are shown in lists or become folder names: one set of rules.

Refused everywhere: control characters (line breaks, NUL), and invisible formatting ones such
as U+202E RIGHT-TO-LEFT OVERRIDE, which makes "exe.txt" display as "txt.exe". Zero-width
joiners stay allowed: Persian, Indic scripts and emoji sequences need them. Folder names also
avoid what Windows or a shell would trip over (`con`, `a:b`, a leading dot).
"""

from __future__ import annotations

import unicodedata

from engine.errors import UserError

# Windows refuses these as file or folder names, whatever the extension ("con.txt" too).
WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
)
_INVISIBLE = ("Cc", "Cf", "Cs", "Zl", "Zp")  # control, format, surrogate, line and paragraph separators
_JOINERS = ("\u200c", "\u200d")
_FOLDER_FORBIDDEN = '/\\:*?"<>|'


def hidden_character(text: str) -> str | None:
    """The first control or invisible formatting character in `text`, described; None if there is none."""
    for char in text:
        if unicodedata.category(char) in _INVISIBLE and char not in _JOINERS:
            name = unicodedata.name(char, "a control character")
            return f"U+{ord(char):04X} ({name})"
    return None


def check_display_name(name: str, what: str) -> str:
    """`name` stripped; UserError naming the problem when it is empty or hides characters."""
    text = name.strip() if isinstance(name, str) else ""
    if not text:
        raise UserError(f"The {what} is empty.", f"Type a name for the {what.split()[0]}.")
    hidden = hidden_character(text)
    if hidden is not None:
        raise UserError(
            f"The {what} {text!r} contains {hidden}; line breaks, control and invisible "
            "formatting characters are not allowed.",
            "Type the name on one line with visible characters.",
        )
    return text


def is_reserved(name: str) -> bool:
    """A name Windows refuses for a file or folder (`con`, `NUL.txt`, `com1`)."""
    return name.split(".")[0].strip().casefold() in WINDOWS_RESERVED


def check_folder_name(name: str, what: str) -> str:
    """A name used as a folder name as it is: display rules plus what file systems refuse."""
    text = check_display_name(name, what)
    if text != name:
        raise UserError(f"The {what} {name!r} starts or ends with a space.", "Remove the spaces.")
    if text.startswith(".") or text.endswith(".") or any(c in text for c in _FOLDER_FORBIDDEN):
        raise UserError(
            f"The {what} {text!r} cannot be a folder name.",
            f"Use letters, digits, spaces, '-', '_' or '.', not starting or ending with a dot, "
            f"and none of {_FOLDER_FORBIDDEN}.",
        )
    if is_reserved(text):
        raise UserError(f"The {what} {text!r} is a name Windows reserves for devices.", "Pick another name.")
    if len(text.encode("utf-8")) > 200:
        size = len(text.encode("utf-8"))
        raise UserError(
            f"The {what} is {size} bytes long; at most 200 fit a folder name.", "Choose a shorter name."
        )
    return text
