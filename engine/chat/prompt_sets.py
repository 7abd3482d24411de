"""The chat pane's prompt sets, stored as eval sets: one file format for both (issue 20).

```
PROJECT/prompt-sets/<name>.jsonl                 an eval set (engine.eval.sets); its name is the file stem
PROJECT/prompt-sets/<name>.toml                  the older format (name, system, prompts): read as an
                                                 eval set, replaced by the .jsonl on the next save
PROJECT/prompt-sets/results/<name>/<label>.json  a set's replies from one model (engine.chat.store)
```
A set is its items, each a prompt (or a multi-turn context) with an optional expected answer
and scorer, so the chat grid can mark replies passed/failed and `whetstone-engine eval --set`
can run the same file.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.chat.store import PROMPT_SETS, RESULTS, _checked_name, _slug
from engine.errors import DataError
from engine.eval.sets import EvalItem, SetProblem, parse_item, read_eval_set, write_eval_set

SUFFIX = ".jsonl"
OLD_SUFFIX = ".toml"
_OPTIONS = {"case_sensitive": ("exact", "contains", "regex"), "match": ("regex",), "tolerance": ("number",)}


@dataclass
class PromptSet:
    name: str
    """The file stem (what eval reports call the set)."""
    items: list[EvalItem]
    problems: list[SetProblem] = field(default_factory=list)
    """Lines of the file that were skipped as unusable."""
    converted: bool = False
    """Read from an older .toml set; the next save writes it as .jsonl."""

    @property
    def slug(self) -> str:
        return self.name

    @property
    def prompts(self) -> list[str]:
        return [item.prompt for item in self.items]

    @property
    def system(self) -> str:
        """The system prompt all items share, else ""."""
        systems = {item.system or "" for item in self.items}
        return systems.pop() if len(systems) == 1 else ""


@dataclass(frozen=True)
class PromptSetSummary:
    slug: str
    name: str
    prompt_count: int
    path: Path
    problem: str | None = None
    skipped: int = 0
    """Unusable lines left out of a set that is otherwise fine."""


def edit_item(
    base: EvalItem | None,
    prompt: str,
    expected: Any = None,
    scorer: str | None = None,
    system: str | None = None,
) -> EvalItem:
    """An item with a new prompt (the last user turn), expected answer and scorer; the rest of
    `base` (its earlier turns, name, category, choices, options that still fit) is kept.
    `system` None keeps the item's own system prompt, "" removes it. ValueError when not usable."""
    obj = base.to_json() if base is not None else {}
    if "messages" in obj:
        obj["messages"][-1]["content"] = prompt
        turns = obj["messages"]
        if system is not None and turns[0]["role"] == "system":
            turns.pop(0)
            if system:
                turns.insert(0, {"role": "system", "content": system})
        elif system:
            turns.insert(0, {"role": "system", "content": system})
    else:
        obj["prompt"] = prompt
        if system is not None:
            obj.pop("system", None)
            if system:
                obj["system"] = system
    for key in ("expected", "scorer"):
        obj.pop(key, None)
    if expected is not None:
        obj["expected"] = expected
    if scorer:
        obj["scorer"] = scorer
    effective = scorer or ("choice" if obj.get("choices") else "exact" if expected is not None else None)
    if effective != "choice":
        obj.pop("choices", None)
    for option, scorers in _OPTIONS.items():
        if effective not in scorers:
            obj.pop(option, None)
    return parse_item(obj, line=base.line if base else 1, index=base.index if base else 0)


def _folder(project_dir: str | Path) -> Path:
    return Path(project_dir) / PROMPT_SETS


def _read_old(path: Path) -> PromptSet:
    """An older .toml set (name, system, prompts) as eval items; its own name gives way to the stem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DataError(f"{path.name} cannot be read: {exc}.") from None
    prompts, system = data.get("prompts"), data.get("system", "")
    if not isinstance(prompts, list) or not prompts:
        raise DataError(f"{path.name}: it has no prompts.", "Add at least one prompt.")
    items, problems = [], []
    for number, prompt in enumerate(prompts, start=1):
        obj = {"prompt": prompt, **({"system": system} if system else {})}
        try:
            items.append(parse_item(obj, line=len(items) + 1, index=len(items)))
        except ValueError as exc:
            problems.append(SetProblem(number, f"prompt {number}: {exc}"))
    if not items:
        raise DataError(f"{path.name}: {problems[0].message}.", "Write the prompts, or delete the set.")
    return PromptSet(path.stem, items, problems, converted=True)


def _read(path: Path) -> PromptSet:
    if path.suffix == OLD_SUFFIX:
        return _read_old(path)
    found = read_eval_set(path)
    return PromptSet(found.name, found.items, found.problems)


def _files(folder: Path) -> dict[str, Path]:
    """stem -> file; a .jsonl wins over an older .toml of the same name."""
    files: dict[str, Path] = {}
    for suffix in (OLD_SUFFIX, SUFFIX):
        for path in folder.glob(f"*{suffix}") if folder.is_dir() else []:
            if not path.name.startswith("."):  # a temp file of an atomic write
                files[path.stem] = path
    return files


def load_prompt_set(project_dir: str | Path, name: str) -> PromptSet:
    """The set; DataError if it is missing or has no usable item."""
    folder = _folder(project_dir)
    _checked_name(name, "Prompt set")
    path = _files(folder).get(name)
    if path is None:
        raise DataError(f"Prompt set {name} does not exist.", "It may have been deleted.")
    return _read(path)


def list_prompt_sets(project_dir: str | Path) -> list[PromptSetSummary]:
    """Every prompt set, by name; one that cannot be used carries a `problem`."""
    out = []
    for stem, path in _files(_folder(project_dir)).items():
        try:
            found = _read(path)
        except DataError as exc:
            out.append(PromptSetSummary(stem, stem, 0, path, exc.one_line()))
            continue
        out.append(PromptSetSummary(stem, stem, len(found.items), path, skipped=len(found.problems)))
    return sorted(out, key=lambda s: (s.name.casefold(), s.slug))


def _taken(folder: Path, stem: str) -> bool:
    return any((folder / f"{stem}{suffix}").exists() for suffix in (SUFFIX, OLD_SUFFIX))


def save_prompt_set(
    project_dir: str | Path, name: str, items: Sequence[EvalItem], previous: str | None = None
) -> PromptSet:
    """Write PROJECT/prompt-sets/<name>.jsonl (atomically) and return the set as saved.

    `name` is made a file name (`Capital cities` -> `capital-cities`). A new set (`previous`
    None) gets a free name; an existing set saved under a new name is renamed, its results too.
    """
    folder = _folder(project_dir)
    if not items:
        raise DataError(f"Prompt set {name!r} has no prompts.", "Add at least one prompt.")
    # Re-read through parse_item: indices and lines follow the new order, and every item is checked.
    try:
        items = [parse_item(item.to_json(), line=i + 1, index=i) for i, item in enumerate(items)]
    except ValueError as exc:
        raise DataError(f"Prompt set {name!r}: {exc}.", "Fix that prompt, then save again.") from None
    stem = _slug(name, "prompts")
    if previous is not None:
        _checked_name(previous, "Prompt set")
    if previous is None:
        base, n = stem, 2
        while _taken(folder, stem):
            stem, n = f"{base}-{n}", n + 1
    elif stem != previous and _taken(folder, stem):
        raise DataError(f"A prompt set named {stem} already exists.", "Pick another name.")
    _checked_name(stem, "Prompt set")
    write_eval_set(folder / f"{stem}{SUFFIX}", items)
    (folder / f"{stem}{OLD_SUFFIX}").unlink(missing_ok=True)  # converted: the .jsonl replaces it
    if previous is not None and previous != stem:
        old_results, new_results = folder / RESULTS / previous, folder / RESULTS / stem
        if old_results.is_dir() and not new_results.exists():
            old_results.rename(new_results)
        for suffix in (SUFFIX, OLD_SUFFIX):
            (folder / f"{previous}{suffix}").unlink(missing_ok=True)
    return PromptSet(stem, items)


def delete_prompt_set(project_dir: str | Path, name: str) -> bool:
    """Remove a prompt set and its saved results; False if it was already gone."""
    folder = _folder(project_dir)
    _checked_name(name, "Prompt set")
    shutil.rmtree(folder / RESULTS / name, ignore_errors=True)
    removed = False
    for suffix in (SUFFIX, OLD_SUFFIX):
        try:
            (folder / f"{name}{suffix}").unlink()
            removed = True
        except FileNotFoundError:
            pass
    return removed


def expected_text(item: EvalItem) -> str:
    """The expected answer as one line of text for an editor ("" when there is none)."""
    if item.expected is None:
        return ""
    return item.expected if isinstance(item.expected, str) else json.dumps(item.expected, ensure_ascii=False)


def parse_expected(text: str, scorer: str | None) -> Any:
    """An editor's expected-answer text as the file's value: JSON for a json schema, else the text."""
    text = text.strip()
    if not text:
        return None
    if scorer == "json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"the expected JSON Schema is not valid JSON: {exc}") from None
    return text
