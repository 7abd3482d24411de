"""How a run is named in lists: its state in words, step, last loss and a short date."""

from __future__ import annotations

import time

STATE_LABELS = {
    "running": "running", "done": "done", "stopped": "stopped", "paused": "paused", "failed": "failed",
    "interrupted": "interrupted", "new": "not started",
}


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
    return " · ".join(parts)
