"""How a run is named in lists: its display name, its state in words, step, last loss and a short date."""

from __future__ import annotations

import time
from pathlib import Path

from engine.runs.names import run_display_name
from engine.runs.verdict import STATE_WORDS as STATE_LABELS  # the engine's one word per state


def short_date(epoch: float | None) -> str:
    if not epoch:
        return ""
    now = time.time()
    fmt = "%H:%M" if now - epoch < 20 * 3600 else ("%d %b %H:%M" if now - epoch < 300 * 86400 else "%d %b %Y")
    return time.strftime(fmt, time.localtime(epoch))


def run_details(run) -> str:
    parts = [STATE_LABELS.get(run.state, run.state)]
    if run.step is not None:
        parts.append(f"step {run.step}" + (f"/{run.max_steps}" if run.max_steps else ""))
    if run.last_loss is not None:
        parts.append(f"loss {run.last_loss:.3f}")
    if run.updated or run.started:
        parts.append(short_date(run.updated or run.started))
    if getattr(run, "eval_headline", ""):
        parts.append(run.eval_headline)
    return " · ".join(parts)


def run_title(run) -> str:
    """The name the user gave the run (RUN_DIR/run.toml), else its folder name;
    `run` is a summary or a folder."""
    return run_display_name(run if isinstance(run, str | Path) else run.path)


def checkpoints_best_first(run) -> list[tuple[int, Path, bool]]:
    """(step, folder, is_best) of a run's complete checkpoints: the best (lowest validation loss)
    first, then the newest first."""
    best = getattr(run, "best_step", None)
    ordered = sorted(run.checkpoints, key=lambda c: (c[0] != best, -c[0]))
    return [(step, path, step == best) for step, path in ordered]


def run_result(run) -> str | None:
    """What to try of a run (chat, export): its final adapter, else the last checkpoint it saved.

    A run still training has no result yet. (When runs keep a best checkpoint, it goes first here.)
    """
    if run is None or run.state == "running":
        return None
    if run.adapter or run.model:
        return str(run.adapter or run.model)
    return str(run.checkpoints[-1][1]) if run.checkpoints else None
