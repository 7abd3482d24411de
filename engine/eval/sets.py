"""Eval set files: JSONL, one item per line (the format is /work/notes/EVAL_SPEC.md).

A bad line is a problem with its 1-based line number and is skipped; the set is refused
(DataError naming the file and the first problems) only when it cannot be read at all or
has no usable item, as with training data. Pure Python: no torch, no pyarrow.
"""

from __future__ import annotations

import difflib
import json
import math
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.data import json_safety
from engine.data.source import check_source
from engine.data.text_columns import ENCODING_HINT
from engine.errors import DataError
from engine.eval import scorers
from engine.util.files import atomic_write_text

KEYS = (
    "prompt", "messages", "system", "expected", "scorer", "choices",
    "name", "category", "case_sensitive", "match", "tolerance", "pick",
)  # fmt: skip
ROLES = ("system", "user", "assistant")
MATCHES = ("search", "full")
PICKS = ("first", "last")  # which number of the reply the number scorer reads
DEFAULT_TOLERANCE = 1e-6
SHOWN_PROBLEMS = 5
"""Problems quoted in the error for a set with no usable item."""
_OPTION_SCORERS = {
    "case_sensitive": ("exact", "contains", "regex"),
    "match": ("regex",),
    "tolerance": ("number",),
    "pick": ("number",),
}
_OPTION_FOR = {"case_sensitive": "exact, contains and regex scorers", "match": "regex scorer",
               "tolerance": "number scorer", "pick": "number scorer"}  # fmt: skip
_BOM = "\ufeff"


@dataclass(frozen=True)
class SetProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class EvalItem:
    index: int
    """0-based among the set's usable items."""
    line: int
    """1-based line of the file."""
    messages: tuple[dict[str, str], ...]
    """{role, content} turns: the system message first if any, ending with a user turn."""
    expected: Any = None
    scorer: str | None = None
    choices: tuple[str, ...] = ()
    name: str = ""
    category: str = ""
    case_sensitive: bool = False
    match: str = "search"
    tolerance: float = DEFAULT_TOLERANCE
    pick: str = "first"
    """The number scorer reads the reply's first number, or its last ("8 + 7 is 15")."""

    @property
    def prompt(self) -> str:
        """The last user message (what a person reads as "the question")."""
        return self.messages[-1]["content"]

    @property
    def system(self) -> str | None:
        first = self.messages[0]
        return first["content"] if first["role"] == "system" else None

    @property
    def choice_index(self) -> int:
        """The index of the right choice (choice scorer only)."""
        if isinstance(self.expected, int) and not isinstance(self.expected, bool):
            return self.expected
        return self.choices.index(self.expected)

    def to_json(self) -> dict[str, Any]:
        """The item as a line of an eval set file (defaults left out); parse_item reads it back equal."""
        turns = [dict(turn) for turn in self.messages]
        system = turns.pop(0)["content"] if turns[0]["role"] == "system" else None
        obj: dict[str, Any] = {}
        if len(turns) == 1:
            obj["prompt"] = turns[0]["content"]
            if system is not None:
                obj["system"] = system
        else:
            obj["messages"] = [dict(turn) for turn in self.messages]
        if self.choices:
            obj["choices"] = list(self.choices)
        if self.expected is not None:
            obj["expected"] = self.expected
        if self.scorer is not None:
            obj["scorer"] = self.scorer
        if self.case_sensitive:
            obj["case_sensitive"] = True
        if self.match != "search":
            obj["match"] = self.match
        if self.tolerance != DEFAULT_TOLERANCE:
            obj["tolerance"] = self.tolerance
        if self.pick != "first":
            obj["pick"] = self.pick
        if self.name:
            obj["name"] = self.name
        if self.category:
            obj["category"] = self.category
        return obj


@dataclass
class EvalSet:
    name: str
    path: Path
    items: list[EvalItem]
    problems: list[SetProblem] = field(default_factory=list)

    def skipped_note(self) -> str | None:
        """A sentence about the lines that were skipped, for the report (None when none were)."""
        if not self.problems:
            return None
        shown = "; ".join(str(problem) for problem in self.problems[:SHOWN_PROBLEMS])
        more = len(self.problems) - SHOWN_PROBLEMS
        count = len(self.problems)
        return (
            f"Eval set {self.name}: {count} line{'s' if count != 1 else ''} skipped, so "
            f"{'they are' if count != 1 else 'it is'} not in its score ({shown}"
            + (f"; and {more} more" if more > 0 else "")
            + f"). Fix {'them' if count != 1 else 'it'} in {self.path}."
        )

    @property
    def scored(self) -> int:
        """Items that have a scorer (the others are shown, not scored)."""
        return sum(item.scorer is not None for item in self.items)


def _text(value: Any, what: str, *, empty_ok: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, not {json_safety.json_type(value)}")
    if not empty_ok and not value.strip():
        raise ValueError(f"{what} is empty")
    return value


def _messages(obj: dict) -> tuple[dict[str, str], ...]:
    if "prompt" in obj and "messages" in obj:
        raise ValueError('give either "prompt" or "messages", not both')
    if "prompt" not in obj and "messages" not in obj:
        raise ValueError('no "prompt" (or "messages")')
    if "prompt" in obj:
        turns = [{"role": "user", "content": _text(obj["prompt"], '"prompt"')}]
    else:
        raw = obj["messages"]
        if not isinstance(raw, list) or not raw:
            raise ValueError('"messages" must be a non-empty list of {"role", "content"} objects')
        turns = []
        for i, turn in enumerate(raw):
            where = f"messages[{i}]"
            if not isinstance(turn, dict):
                raise ValueError(f"{where} must be an object, not {json_safety.json_type(turn)}")
            extra = sorted(set(turn) - {"role", "content"})
            if extra:
                raise ValueError(f'{where} has unknown key {extra[0]!r} (only "role" and "content")')
            role = turn.get("role")
            if role not in ROLES:
                raise ValueError(f"{where} has role {role!r}; use one of {', '.join(ROLES)}")
            if role == "system" and i:
                raise ValueError(f"{where} is a system message; only the first message may be one")
            turns.append({"role": role, "content": _text(turn.get("content"), f"{where} content")})
        if turns[-1]["role"] != "user":
            raise ValueError("the last message must be a user turn (the one the model answers)")
    if "system" in obj:
        if turns[0]["role"] == "system":
            raise ValueError('"system" is given twice: as a key and as the first message')
        turns.insert(0, {"role": "system", "content": _text(obj["system"], '"system"')})
    return tuple(turns)


def _choices(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or len(raw) < 2:
        raise ValueError('"choices" must be a list of at least 2 strings')
    choices = tuple(_text(choice, f"choices[{i}]") for i, choice in enumerate(raw))
    if len(set(choices)) != len(choices):
        raise ValueError('"choices" has the same choice twice')
    return choices


def _check_expected(scorer: str, expected: Any, choices: tuple[str, ...]) -> None:
    what = json_safety.json_type(expected)
    if scorer in ("exact", "contains", "regex"):
        if expected is None:
            raise ValueError(f'the {scorer} scorer needs "expected" (a string)')
        if not isinstance(expected, str):
            hint = ' (or use "scorer": "number")' if what == "a number" else ""
            raise ValueError(f'"expected" must be a string for the {scorer} scorer, not {what}{hint}')
        _text(expected, '"expected"')
    elif scorer == "number":
        if expected is None:
            raise ValueError('the number scorer needs "expected" (a number)')
        try:
            scorers.parse_number(expected)
        except ValueError as exc:
            raise ValueError(f'"expected" for the number scorer: {exc}') from None
    elif scorer == "json":
        if expected is not None:
            scorers.check_schema(expected)
    elif scorer == "choice":
        if isinstance(expected, int) and not isinstance(expected, bool):
            if not 0 <= expected < len(choices):
                raise ValueError(f'"expected" index {expected} is not in 0..{len(choices) - 1}')
        elif not isinstance(expected, str):
            raise ValueError(f'"expected" must be one of "choices" or its 0-based index, not {what}')
        elif expected not in choices:
            raise ValueError(f'"expected" {expected!r} is not one of "choices"')


def _unknown_keys(obj: dict) -> None:
    unknown = [key for key in obj if key not in KEYS]
    if not unknown:
        return
    close = difflib.get_close_matches(unknown[0], KEYS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    names = ", ".join(repr(key) for key in unknown)
    raise ValueError(f"unknown key{'s' if len(unknown) > 1 else ''} {names}{hint}")


def parse_item(obj: Any, line: int, index: int) -> EvalItem:
    """One eval item from a parsed line; ValueError with a one-line message when it is not usable."""
    if not isinstance(obj, dict):
        raise ValueError(f"the line is {json_safety.json_type(obj)}, not an object")
    _unknown_keys(obj)
    messages = _messages(obj)
    expected = obj.get("expected")
    choices = _choices(obj["choices"]) if "choices" in obj else ()
    scorer = obj.get("scorer")
    if scorer is None:
        scorer = "choice" if choices else "exact" if expected is not None else None
    elif scorer not in scorers.SCORERS:
        raise ValueError(f"unknown scorer {scorer!r}; use one of {', '.join(scorers.SCORERS)}")
    if scorer == "choice" and not choices:
        raise ValueError('the choice scorer needs "choices" (a list of at least 2 strings)')
    if choices and scorer != "choice":
        raise ValueError(f'"choices" is only for the choice scorer, not {scorer}')
    if scorer is not None:
        _check_expected(scorer, expected, choices)
    for option, allowed in _OPTION_SCORERS.items():
        if option in obj and scorer not in allowed:
            this = f"this item's scorer is {scorer}" if scorer else "this item has no scorer"
            raise ValueError(f'"{option}" is only for the {_OPTION_FOR[option]}; {this}')
    case_sensitive = obj.get("case_sensitive", False)
    if not isinstance(case_sensitive, bool):
        raise ValueError('"case_sensitive" must be true or false')
    match = obj.get("match", "search")
    if match not in MATCHES:
        raise ValueError(f'"match" must be "search" or "full", not {match!r}')
    tolerance = obj.get("tolerance", DEFAULT_TOLERANCE)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not math.isfinite(tolerance):
        raise ValueError('"tolerance" must be a number')
    if tolerance < 0:
        raise ValueError(f'"tolerance" must be >= 0, not {tolerance}')
    pick = obj.get("pick", "first")
    if pick not in PICKS:
        raise ValueError(f'"pick" must be "first" or "last", not {pick!r}')
    if scorer == "regex":
        scorers.compile_regex(expected, case_sensitive)
    name = _text(obj.get("name", ""), '"name"', empty_ok=True)
    category = _text(obj.get("category", ""), '"category"', empty_ok=True)
    return EvalItem(
        index=index, line=line, messages=messages, expected=expected, scorer=scorer, choices=choices,
        name=name, category=category, case_sensitive=case_sensitive, match=match, tolerance=float(tolerance),
        pick=pick,
    )  # fmt: skip


def _read_text(path: Path) -> str:
    info = check_source(path, "Eval set")  # missing, unreadable, a FIFO, empty: one clear reason
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"Eval set {path} is a folder.", "Pass a JSONL file, one item per line.")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"Cannot read eval set {path}: {exc.strerror or exc}.", "Pick a readable JSONL file."
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"Eval set {path} is not UTF-8 text (line {line}, byte {exc.start + 1} of the file).",
            ENCODING_HINT[0].upper() + ENCODING_HINT[1:] + ".",
        ) from None


def read_eval_set(path: str | Path, name: str | None = None) -> EvalSet:
    """Read and check an eval set file; bad lines become problems. DataError when nothing is usable."""
    path = Path(path)
    text = _read_text(path).removeprefix(_BOM)
    items: list[EvalItem] = []
    problems: list[SetProblem] = []
    # Only "\n" ends a line: str.splitlines would also split at U+2028 and the like inside a string.
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        try:
            obj = json_safety.loads(line)
        except json_safety.TooDeep as exc:
            problems.append(SetProblem(number, str(exc)))
            continue
        except json.JSONDecodeError as exc:
            problems.append(SetProblem(number, f"invalid JSON: {exc.msg} at column {exc.colno}"))
            continue
        try:
            items.append(parse_item(obj, number, len(items)))
        except ValueError as exc:
            problems.append(SetProblem(number, str(exc)))
    if not items:
        if not problems:
            raise DataError(
                f"Eval set {path} is empty.",
                'Add one JSON object per line, e.g. {"prompt": "What is 2 + 2?", "expected": "4"}.',
            )
        shown = "; ".join(str(problem) for problem in problems[:SHOWN_PROBLEMS])
        more = len(problems) - SHOWN_PROBLEMS
        raise DataError(
            f"Eval set {path} has no usable item: {shown}" + (f" (and {more} more)." if more > 0 else "."),
            'Fix those lines: each must be one JSON object with a "prompt" (or "messages") '
            'and, to be scored, an "expected" answer and a "scorer".',
        )
    return EvalSet(name or path.stem, path, items, problems)


def write_eval_set(path: str | Path, items: Iterable[EvalItem]) -> None:
    """Write items as an eval set file, atomically (a kill leaves the previous file whole)."""
    lines = [json.dumps(item.to_json(), ensure_ascii=False) + "\n" for item in items]
    atomic_write_text(Path(path), "".join(lines))
