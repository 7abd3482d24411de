"""Where a resume starts, and what of the run folder's checkpoints it keeps."""

from __future__ import annotations

from pathlib import Path

from engine.config import RunConfig
from engine.errors import ConfigError
from engine.runs import checkpoints
from engine.runs.events import EventLog


def resume_point(run_dir: Path, config: RunConfig, step: int | None) -> tuple[int, Path] | None:
    """The complete checkpoint a resume starts from (checked before anything is written)."""
    done = checkpoints.complete_checkpoints(run_dir)
    if step is not None:
        chosen = [(s, p) for s, p in done if s == step]
        if not chosen:
            steps = ", ".join(str(s) for s, _ in done) or "none"
            raise ConfigError(
                f"{run_dir} has no complete checkpoint at step {step} (complete: {steps}).",
                "Pick one of the complete checkpoints.",
            )
        point = chosen[0]
    else:
        point = done[-1] if done else None
    max_steps = config.training.max_steps
    if point and max_steps and point[0] >= max_steps:
        raise ConfigError(
            f"The run is already at step {point[0]} and training.max_steps = {max_steps}.",
            "To train further, set training.max_steps above the step the run has reached.",
        )
    return point


def tidy_checkpoints_for_resume(
    run_dir: Path, resume: bool, start: tuple[int, Path] | None, log: EventLog
) -> None:
    """Before a resume: drop half-written checkpoints, and later ones when branching from an earlier step."""
    if start is not None:
        removed = checkpoints.remove_incomplete(run_dir)
        if removed:
            log.warning(f"Removed {len(removed)} incomplete checkpoint(s) left by an interrupted save.")
        later = checkpoints.discard_after(run_dir, start[0])
        if later:  # the run branches from an earlier step; later checkpoints belong to the old branch
            log.warning(
                f"Resuming from step {start[0]}: removed the later checkpoint(s) at step "
                f"{', '.join(str(s) for s in later)}."
            )
    elif resume:
        checkpoints.remove_incomplete(run_dir)
        log.warning("No complete checkpoint to resume from: starting from step 0.")
