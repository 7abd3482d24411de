"""A run's display name: what the user calls it, kept apart from its folder name.

The folder name (run-YYYYMMDD-HHMMSS) never changes, because checkpoints, exports and
conversations record paths inside it; the display name lives in RUN_DIR/run.toml and is
replaced atomically on rename. A run without that file (or with a damaged one) is shown
by its folder name. Qt-free and torch-free: the project browser reads it for every run.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import tomli_w

from engine.errors import UserError
from engine.util.files import atomic_write_text
from engine.util.names import hidden_character

RUN_INFO_NAME = "run.toml"
MAX_RUN_NAME = 80


def check_run_name(name: object) -> str:
    """The name as it will be stored (stripped); UserError saying what is wrong otherwise."""
    text = name.strip() if isinstance(name, str) else ""
    if not text:
        raise UserError("A run needs a name.", "Type a name for the run.")
    if len(text) > MAX_RUN_NAME:
        raise UserError(
            f"The run name is {len(text)} characters long; at most {MAX_RUN_NAME} are allowed.",
            "Choose a shorter name.",
        )
    if hidden_character(text) is not None:  # the rules of every name we show (engine.util.names)
        raise UserError(
            "A run name cannot contain line breaks, control or text-direction characters.",
            "Type the name on one line with ordinary characters.",
        )
    return text


def read_run_name(run_dir: str | Path) -> str | None:
    """The stored display name, or None when there is none (or it cannot be read)."""
    try:
        raw = tomllib.loads((Path(run_dir) / RUN_INFO_NAME).read_text(encoding="utf-8"))
        return check_run_name(raw["run"]["name"])
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError, UserError):
        return None  # a missing or damaged file falls back to the folder name; nothing to report


def run_display_name(run_dir: str | Path) -> str:
    """What lists show for a run: its display name, else its folder name."""
    return read_run_name(run_dir) or Path(run_dir).name


def write_run_name(run_dir: str | Path, name: str) -> str:
    """Store (or replace) the display name; the folder is created if needed, never renamed."""
    text = check_run_name(name)
    folder = Path(run_dir)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is not a run folder.", "Choose a run folder.", kind="io")
    try:
        atomic_write_text(folder / RUN_INFO_NAME, tomli_w.dumps({"run": {"name": text}}))
    except OSError as exc:
        raise UserError(
            f"The run's name could not be saved: {exc.strerror or exc}.",
            "Check that the run folder is writable and the disk not full.",
            kind="io",
        ) from None
    return text
