"""Checkpoints that are either complete or ignored.

transformers' Trainer writes `checkpoint-N/` file by file, so a kill mid-save leaves a
folder that looks real. We fsync it and then write our own marker atomically; only
marked folders are ever resumed from, and unmarked ones are removed before a resume.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

from engine.util.files import atomic_write_text, fsync_tree

MARKER = "whetstone-complete.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def _all(run_dir: Path) -> list[tuple[int, Path]]:
    root = checkpoints_dir(run_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _NAME.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def mark_complete(checkpoint: Path, step: int) -> None:
    fsync_tree(checkpoint)
    atomic_write_text(checkpoint / MARKER, json.dumps({"step": step, "time": time.time()}))


def is_complete(checkpoint: Path) -> bool:
    return (checkpoint / MARKER).is_file()


def complete_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    return [(step, path) for step, path in _all(run_dir) if is_complete(path)]


def latest_complete(run_dir: Path) -> Path | None:
    done = complete_checkpoints(run_dir)
    return done[-1][1] if done else None


def remove_incomplete(run_dir: Path) -> list[Path]:
    removed = []
    for _step, path in _all(run_dir):
        if not is_complete(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def prune(run_dir: Path, keep: int, protect: int | None = None) -> None:
    """Keep the `keep` newest complete checkpoints, and the one at step `protect` (the best) besides."""
    done = [(step, path) for step, path in complete_checkpoints(run_dir) if step != protect]
    for _step, path in done[:-keep] if keep > 0 else []:
        # Remove the marker first: a kill mid-delete must not leave a "complete" half folder.
        (path / MARKER).unlink(missing_ok=True)
        shutil.rmtree(path, ignore_errors=True)


def discard_after(run_dir: Path, step: int) -> list[int]:
    """Delete the checkpoints after `step` (a resume from an earlier one starts a new branch).

    The Trainer would write its new checkpoint-N into the old folder, so a kill mid-save
    would leave the old branch's marker on a half-new folder.
    """
    later = [(s, path) for s, path in _all(run_dir) if s > step]
    for _s, path in later:
        (path / MARKER).unlink(missing_ok=True)
        shutil.rmtree(path, ignore_errors=True)
    return [s for s, _path in later]
