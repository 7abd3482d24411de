"""Scoring a generated reply against an eval item's expected answer (see /work/notes/EVAL_SPEC.md).

Text scorers only: exact, contains, regex, number and json look at the reply's text. The
choice scorer needs the model's log-likelihood of each choice, so its caller scores it.
Pure Python (jsonschema is imported only when a schema is used).
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from engine.data import json_safety

if TYPE_CHECKING:
    from engine.eval.sets import EvalItem

TEXT_SCORERS = ("exact", "contains", "regex", "number", "json")
SCORERS = (*TEXT_SCORERS, "choice")

# The first number: a sign (ASCII or U+2212 minus) only where no word precedes it ("COVID-19" is 19),
# "1,234" thousands groups, decimals (".5" too) and scientific notation; no digit may precede it.
_NUMBER = re.compile(
    r"(?<![\w.])[-+\u2212]?"
    r"(?:(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)"
    r"(?:[eE][-+]?\d+)?"
)
_FENCE = re.compile(r"```[ \t]*json\b(.*?)```", re.DOTALL | re.IGNORECASE)
_MAX_SPANS = 200
"""Opening brackets tried as the start of a JSON span in one reply (a reply is a few hundred tokens)."""


def normalise(text: str, case_sensitive: bool = False) -> str:
    """Trimmed, whitespace collapsed, case-folded unless case_sensitive, one trailing "." or "!" dropped."""
    text = " ".join(text.split())
    if not case_sensitive:
        text = text.casefold()
    if text.endswith((".", "!")):
        text = text[:-1].rstrip()
    return text


def _to_float(token: str) -> float:
    return float(token.replace(",", "").replace("\u2212", "-"))


def first_number(text: str) -> float | None:
    """The first number written in `text` ("-1,234.5", "6.02e23", ".5"), or None when there is none."""
    found = _NUMBER.search(text)
    return None if found is None else _to_float(found.group())


def last_number(text: str) -> float | None:
    """The last number written in `text`, or None when there is none."""
    found = list(_NUMBER.finditer(text))
    return _to_float(found[-1].group()) if found else None


def parse_number(value: Any) -> float:
    """An expected number: an int/float, or a string that is exactly one number; else ValueError."""
    if isinstance(value, bool):
        raise ValueError("true/false is not a number")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        found = _NUMBER.fullmatch(value.strip())
        if found is None:
            raise ValueError(f"{value!r} is not a number")
        number = _to_float(found.group())
    else:
        raise ValueError(f"{json_safety.json_type(value)} is not a number")
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _decode(text: str) -> Any:
    try:
        return json_safety.loads(text)
    except RecursionError:  # pragma: no cover - json_safety turns it into TooDeep
        raise ValueError("nested too deeply") from None


def extract_json(text: str) -> Any:
    """The JSON value in a reply: the whole reply, else the first ```json fenced block, else the
    first {...} or [...] span that parses. ValueError when there is none (JSON null is a value)."""
    stripped = text.strip()
    candidates = [stripped]
    fence = _FENCE.search(text)
    if fence:
        candidates.append(fence.group(1).strip())
    for candidate in candidates:
        if candidate:
            try:
                return _decode(candidate)
            except ValueError:
                pass
    decoder = json.JSONDecoder()
    for tried, opener in enumerate(re.finditer(r"[\[{]", text)):
        if tried >= _MAX_SPANS:
            break
        try:
            value, _end = decoder.raw_decode(text, opener.start())
        except (ValueError, RecursionError):
            continue
        if not json_safety.too_deep(value):
            return value
    raise ValueError("no JSON value in the reply")


@lru_cache(maxsize=64)
def _validator(schema_text: str):
    from jsonschema.validators import validator_for

    schema = json.loads(schema_text)
    return validator_for(schema)(schema)


def check_schema(schema: Any) -> None:
    """ValueError (one line) unless `schema` is a valid JSON Schema object."""
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    if not isinstance(schema, dict):
        raise ValueError(f"a JSON Schema must be an object, not {json_safety.json_type(schema)}")
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path)
        raise ValueError(
            f"expected is not a valid JSON Schema: {exc.message}" + (f" (at {where})" if where else "")
        ) from None
    except RecursionError:
        raise ValueError("expected is not a valid JSON Schema: nested too deeply") from None
    _check_refs(schema)


def _check_refs(schema: dict) -> None:
    """Every "$ref" must point inside the schema: evaluation is offline, and an unresolvable
    reference would otherwise only fail when a reply is scored."""
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not _points_inside(schema, ref):
                raise ValueError(
                    f"the JSON Schema's reference {ref!r} points outside it or to nothing; "
                    'only references inside the schema ("#/$defs/...") can be used'
                )
            stack.extend(node.values())


def _points_inside(schema: dict, ref: str) -> bool:
    if not ref.startswith("#"):
        return False
    node: Any = schema
    for raw in filter(None, ref[1:].split("/")):
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def matches_schema(value: Any, schema: dict) -> bool:
    from referencing.exceptions import Unresolvable

    try:
        return bool(_validator(json.dumps(schema, sort_keys=True)).is_valid(value))
    except (RecursionError, Unresolvable):
        return False


def compile_regex(pattern: str, case_sensitive: bool = False) -> re.Pattern:
    """The compiled pattern of a regex item; ValueError (one line) when it does not compile."""
    try:
        return re.compile(pattern, 0 if case_sensitive else re.IGNORECASE)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ValueError(f"the regex does not compile: {exc}") from None


def score_reply(item: EvalItem, reply: str) -> bool | None:
    """Whether `reply` passes `item`'s scorer; None for an item without a scorer (shown, not scored).

    ValueError for the choice scorer: it is scored by log-likelihood, not from a reply.
    """
    scorer = item.scorer
    if scorer is None:
        return None
    if scorer == "exact":
        return normalise(reply, item.case_sensitive) == normalise(item.expected, item.case_sensitive)
    if scorer == "contains":
        return normalise(item.expected, item.case_sensitive) in normalise(reply, item.case_sensitive)
    if scorer == "regex":
        pattern = compile_regex(item.expected, item.case_sensitive)
        if item.match == "full":
            return pattern.fullmatch(reply.strip()) is not None
        return pattern.search(reply) is not None
    if scorer == "number":
        found = last_number(reply) if item.pick == "last" else first_number(reply)
        return found is not None and abs(found - parse_number(item.expected)) <= item.tolerance
    if scorer == "json":
        try:
            value = extract_json(reply)
        except ValueError:
            return False
        return item.expected is None or matches_schema(value, item.expected)
    if scorer == "choice":
        raise ValueError("the choice scorer is scored by log-likelihood, not from a reply")
    raise ValueError(f"unknown scorer {scorer!r}")
