"""`RUN_DIR/best.json`: the complete checkpoint with the lowest validation loss.

{"step": N, "eval_loss": x, "path": "checkpoints/checkpoint-N"}, written atomically by the
training engine whenever a checkpoint with a new lowest loss is complete, and rewritten from
the resumed checkpoint's own evaluation history when a run is resumed. Readers (chat, export,
evaluation) trust it only while the checkpoint it names is complete.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from engine.runs import checkpoints
from engine.util.files import atomic_write_text

BEST_NAME = "best.json"


def best_path(run_dir: Path) -> Path:
    return Path(run_dir) / BEST_NAME


def write_best(run_dir: Path, step: int, eval_loss: float) -> None:
    record = {"step": step, "eval_loss": eval_loss, "path": f"checkpoints/checkpoint-{step}"}
    atomic_write_text(best_path(run_dir), json.dumps(record) + "\n")


def clear_best(run_dir: Path) -> None:
    best_path(run_dir).unlink(missing_ok=True)


def read_best(run_dir: Path) -> dict[str, Any] | None:
    """The best checkpoint's record, or None if there is none or the checkpoint it names is not complete."""
    try:
        record = json.loads(best_path(run_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    step, loss = record.get("step"), record.get("eval_loss")
    if not isinstance(step, int) or isinstance(step, bool) or not isinstance(loss, int | float):
        return None
    folder = checkpoints.checkpoints_dir(run_dir) / f"checkpoint-{step}"
    if not math.isfinite(loss) or not checkpoints.is_complete(folder):
        return None
    return {"step": step, "eval_loss": float(loss), "path": f"checkpoints/checkpoint-{step}"}


def best_step(run_dir: Path) -> int | None:
    record = read_best(run_dir)
    return record["step"] if record else None
