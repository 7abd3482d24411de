"""What a model card says, read from the files that know it: the base folder, the run folder.

Light (no torch): the base model's name, size and license from its folder; the run's data
summary, adapter step and latest evaluation from its event log and evals/ folder. Every reader
returns None (or an empty value) for what a folder does not say, so a card never fails an export.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.runs.events import iter_backwards
from engine.runs.output import run_output

LICENSE_TEXT_LIMIT = 16_000  # characters; longer texts are cut with a pointer to the base's file
_LICENSE_NAMES = ("license", "licence", "copying")
_KNOWN_TEXTS = (  # (HF license id, words every copy of that text has)
    ("apache-2.0", ("Apache License", "Version 2.0")),
    ("mit", ("Permission is hereby granted, free of charge",)),
)


@dataclass(frozen=True)
class BaseModel:
    name: str  # hub id ("org/name") for a hub cache snapshot, else the folder's name
    path: str
    architecture: str | None = None
    parameters: int | None = None
    context_length: int | None = None
    license_id: str | None = None  # the Hugging Face license id when known (apache-2.0, llama3.1, ...)
    license_name: str | None = None  # what the license calls itself
    license_file: str | None = None  # the file in the base folder the text comes from
    license_text: str | None = None
    license_truncated: bool = False


def read_base_model(path: Path) -> BaseModel:
    """The base folder's name, architecture, size and license (from LICENSE* or README front matter)."""
    from engine.models.info import describe_model

    info = describe_model(path)
    meta = front_matter(path / "README.md")
    license_id = _field(meta.get("license"))
    license_name = _field(meta.get("license_name"))
    file = license_file(path)
    text, truncated = None, False
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            file = None
    if text:
        if len(text) > LICENSE_TEXT_LIMIT:
            text, truncated = text[:LICENSE_TEXT_LIMIT].rstrip(), True
        license_id = license_id or next(
            (spdx for spdx, words in _KNOWN_TEXTS if all(w in text for w in words)), None
        )
        license_name = license_name or text.splitlines()[0].strip(" #*=")[:120] or None
    return BaseModel(
        name=info.name,
        path=str(info.path),
        architecture=info.architecture,
        parameters=info.parameters,
        context_length=info.context_length,
        license_id=license_id,
        license_name=license_name,
        license_file=file.name if file is not None and text else None,
        license_text=text or None,
        license_truncated=truncated,
    )


def license_file(folder: Path) -> Path | None:
    """LICENSE, LICENSE.txt, LICENCE.md, COPYING ... in `folder` (the shortest name first)."""
    try:
        names = sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: (len(p.name), p.name))
    except OSError:
        return None
    return next((p for p in names if p.name.lower().split(".")[0] in _LICENSE_NAMES), None)


def front_matter(readme: Path) -> dict[str, str]:
    """The top-level `key: value` lines of a README's YAML front matter (model cards keep the
    license there); lists and nested values are skipped, which is all a card needs."""
    try:
        with open(readme, encoding="utf-8", errors="replace") as handle:
            head = handle.read(64_000)
    except OSError:
        return {}
    lines = head.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    out: dict[str, str] = {}
    for line in lines[1:]:
        if line.strip() == "---":
            return out
        match = re.match(r"^([A-Za-z_][\w-]*):\s*(\S.*)?$", line)
        if match and match.group(2):
            out[match.group(1)] = match.group(2).strip()
    return {}  # no closing marker: not front matter


def _field(value: str | None) -> str | None:
    if not value:
        return None
    value = value.split(" #")[0].strip().strip("\"'").strip()
    return value or None


@dataclass(frozen=True)
class RunFacts:
    data: dict[str, Any] | None = None  # the run's last `data` event (rows, tokens, format)
    replay_rows: int | None = None
    adapter_step: int | None = None  # the training step whose weights the adapter holds
    steps: int | None = None  # the steps the run trained in all
    state: str | None = None  # done / stopped


def read_run_facts(run_dir: Path | None, adapter_dir: Path) -> RunFacts:
    """The run's data summary and which step the exported adapter holds, from its event log."""
    checkpoint_step = _checkpoint_step(adapter_dir)
    if run_dir is None:
        return RunFacts(adapter_step=checkpoint_step)
    data, replay, ending = None, None, None
    for event in iter_backwards(Path(run_dir) / "events.jsonl"):
        kind = event.get("type")
        if kind == "status" and ending is None and event.get("state") in ("done", "stopped"):
            ending = event
        elif kind == "info" and replay is None and isinstance(event.get("replay_rows"), int):
            replay = event["replay_rows"]
        elif kind == "data":
            data = event  # the newest: a resumed run reads its data again
            break
    ending = ending or {}
    step = ending.get("adapter_step")
    own = run_output(run_dir)  # the run's adapter/ (or, for a full fine-tuning run, its model/)
    if checkpoint_step is None and (own is None or Path(adapter_dir).resolve() != own.path.resolve()):
        step = None  # an adapter folder that is not the run's own: the log does not describe it
    return RunFacts(
        data=data,
        replay_rows=replay,
        adapter_step=checkpoint_step if checkpoint_step is not None else _int(step),
        steps=_int(ending.get("step")),
        state=ending.get("state"),
    )


def _checkpoint_step(adapter_dir: Path) -> int | None:
    match = re.fullmatch(r"checkpoint-(\d+)", Path(adapter_dir).name)
    return int(match.group(1)) if match and Path(adapter_dir).parent.name == "checkpoints" else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def training_examples(config, count: int) -> list[Any]:
    """The first `count` usable training rows as the trainer reads them (normalised); [] if unreadable."""
    if count <= 0 or config is None or not config.data.path:
        return []
    from engine.data.prepare import read_config_data
    from engine.errors import UserError

    try:
        return list(read_config_data(config.data).rows[:count])
    except (UserError, OSError):
        return []
