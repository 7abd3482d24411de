"""What the validation loss decides during a run: the best checkpoint and early stopping.

Every evaluation is followed by a checkpoint (the guard asks for a save), so the lowest
validation loss always has a complete checkpoint to point at. The guard's state is rebuilt from
the resumed checkpoint's own history (Trainer's log_history) when a run is resumed, so a kill
and --resume, or a resume from an earlier step, continue with the same best checkpoint and the
same patience count as a run that was never interrupted.
"""

from __future__ import annotations

import math
from pathlib import Path

from transformers import TrainerCallback

from engine.runs import best, checkpoints
from engine.runs.events import EventLog
from engine.training.distributed import Ranks


def auto_eval_every(total_steps: int, evaluations: int = 10) -> int:
    """An evaluation interval giving about `evaluations` evaluations over a run of `total_steps`."""
    return max(1, math.ceil(max(total_steps, 1) / evaluations))


def planned_steps(train_rows: int, batch_size: int, accumulation: int, world: int, epochs: float) -> int:
    """Optimizer steps of an epoch-based run, counted the way Trainer counts them."""
    batches = math.ceil(train_rows / max(1, batch_size * world))
    return max(1, math.ceil(epochs * max(1, batches // accumulation)))


class ValidationGuard(TrainerCallback):
    """Tracks the evaluations: the best (step, loss) with its checkpoint, and the evaluations in a
    row without improvement. Added before EngineCallback, which asks it what to keep on each save."""

    def __init__(
        self, log: EventLog, run_dir: Path, patience: int, min_delta: float, ranks: Ranks | None = None
    ) -> None:
        self.log = log
        self.run_dir = run_dir
        self.patience = patience
        self.min_delta = min_delta
        self.ranks = ranks or Ranks()
        self.evaluated: dict[int, float | None] = {}  # step -> validation loss (None: not a number)
        self.best: tuple[int, float] | None = None
        self.lowest: float | None = None
        self.without_improvement = 0
        self.early_stopped = False

    def record(self, step: int, loss: float | None, candidate: bool = True) -> None:
        """One evaluation; `candidate`: its step can be the best (it has, or will have, a checkpoint)."""
        finite = isinstance(loss, int | float) and math.isfinite(loss)
        self.evaluated[step] = float(loss) if finite else None
        if finite and (self.lowest is None or loss < self.lowest - self.min_delta):
            self.without_improvement = 0
        else:
            self.without_improvement += 1
        if finite:
            self.lowest = loss if self.lowest is None else min(self.lowest, loss)
            if candidate and (self.best is None or loss < self.best[1]):
                self.best = (step, float(loss))

    def on_train_begin(self, args, state, control, **kwargs):
        """A resumed run takes its history from the checkpoint it continues from, and nothing later."""
        self.evaluated, self.best, self.lowest, self.without_improvement = {}, None, None, 0
        complete = {step for step, _path in checkpoints.complete_checkpoints(self.run_dir)}
        for entry in state.log_history:
            step = entry.get("step")
            if "eval_loss" in entry and isinstance(step, int) and step <= state.global_step:
                self.record(step, entry["eval_loss"], candidate=step in complete)
        if self.ranks.is_main:
            if self.best is not None:
                best.write_best(self.run_dir, *self.best)
            else:
                best.clear_best(self.run_dir)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        step = state.global_step
        self.record(step, (metrics or {}).get("eval_loss"))
        control.should_save = True  # every evaluation is a checkpoint: the best one can be kept
        if self.patience and self.without_improvement >= self.patience and step < state.max_steps:
            self.early_stopped = True
            control.should_training_stop = True
            self.log.emit(
                "info",
                step=step,
                message=f"Stopping early: the validation loss has not improved for {self.patience} "
                f"evaluations (lowest {'none' if self.lowest is None else f'{self.lowest:.4f}'}).",
            )

    def best_checkpoint(self, last_step: int) -> tuple[int, Path] | None:
        """The best complete checkpoint (step, folder) when it is not the last step's; else None."""
        if self.best is None or self.best[0] == last_step:
            return None
        folder = checkpoints.checkpoints_dir(self.run_dir) / f"checkpoint-{self.best[0]}"
        return (self.best[0], folder) if checkpoints.is_complete(folder) else None

    def checkpoint_complete(self, step: int) -> int | None:
        """Rank 0, once checkpoint `step` is complete: record it if it is the best; the step to keep."""
        if self.best is not None and self.best[0] == step:
            best.write_best(self.run_dir, *self.best)
        return self.best[0] if self.best is not None else None
