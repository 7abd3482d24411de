"""Trainer callbacks: turn Trainer logs into engine events, mark checkpoints, honour stops."""

from __future__ import annotations

import math
import resource
import sys
import time
from pathlib import Path

from transformers import TrainerCallback

from engine.runs import checkpoints
from engine.runs.events import EventLog
from engine.training import distributed
from engine.training.distributed import Ranks
from engine.training.preference import preference_fields
from engine.training.stop import StopRequest


def peak_memory_mb(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss_kb / 1024 if sys.platform != "darwin" else rss_kb / 2**20


class EngineCallback(TrainerCallback):
    def __init__(
        self,
        log: EventLog,
        run_dir: Path,
        device: str,
        keep: int,
        stop: StopRequest,
        ranks: Ranks | None = None,
        guard=None,
    ) -> None:
        self.log = log
        self.guard = guard  # engine.training.validation_guard.ValidationGuard, with validation data
        self.ranks = ranks or Ranks()
        self.run_dir = run_dir
        self.device = device
        self.keep = keep
        self.stop = stop
        self.stopped = False
        self.diverged: tuple[int, float] | None = None  # (step, loss) of the first NaN or infinite loss
        self._last_time = None
        self._last_tokens = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._last_time = time.perf_counter()
        self._last_tokens = state.num_input_tokens_seen
        self.log.status(
            "training", step=state.global_step, max_steps=state.max_steps, world_size=self.ranks.world_size
        )

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "eval_loss" in logs:
            extra = preference_fields(logs, "eval_")
            extra = {k: v for k, v in extra.items() if k in ("eval_reward_margin", "eval_reward_accuracy")}
            self.log.emit(
                "eval", step=state.global_step, epoch=state.epoch, eval_loss=logs["eval_loss"], **extra
            )
            self._last_time = time.perf_counter()  # evaluation time is not training throughput
        elif "loss" in logs and not math.isfinite(logs["loss"]):
            # The weights stop being numbers from here on: stop, and neither evaluate nor save (this
            # step's evaluation and checkpoint come after its log; the validation guard saves after
            # every evaluation). The loss is averaged over the ranks: all stop here.
            self.diverged = self.diverged or (state.global_step, logs["loss"])
            control.should_training_stop = True
            control.should_evaluate = False
            control.should_save = False
        elif "loss" in logs:
            now = time.perf_counter()
            tokens = state.num_input_tokens_seen
            elapsed = max(now - self._last_time, 1e-9)
            self.log.emit(
                "metrics",
                step=state.global_step,
                max_steps=state.max_steps,
                epoch=state.epoch,
                loss=logs["loss"],
                learning_rate=logs.get("learning_rate"),
                grad_norm=logs.get("grad_norm"),
                tokens=tokens,  # summed over every rank by the Trainer, so the rate is the global one
                tokens_per_second=(tokens - self._last_tokens) / elapsed,
                world_size=self.ranks.world_size,
                peak_memory_mb=round(peak_memory_mb(self.device), 1),
                memory_kind="cuda_allocated" if self.device == "cuda" else "process_rss",
                **preference_fields(logs),
            )
            self._last_time, self._last_tokens = now, tokens

    def on_step_end(self, args, state, control, **kwargs):
        if state.max_steps and state.global_step >= state.max_steps:
            control.should_save = True  # a finished run keeps its last step resumable: "train further"
        # All ranks must stop at the same step, or the next collective would wait forever.
        if distributed.any_rank(self.stop.requested) and not self.stopped:
            self.stopped = True
            control.should_save = True
            control.should_training_stop = True

    def on_save(self, args, state, control, **kwargs):
        # Every rank writes its own RNG state into the checkpoint: it is complete once all have.
        distributed.barrier()
        if not self.ranks.is_main:
            return
        folder = checkpoints.checkpoints_dir(self.run_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            checkpoints.mark_complete(folder, state.global_step)
            # best.json names a complete checkpoint only, and pruning never takes the best one.
            protect = self.guard.checkpoint_complete(state.global_step) if self.guard else None
            checkpoints.prune(self.run_dir, self.keep, protect)
            self.log.emit("checkpoint", durable=True, step=state.global_step, path=str(folder))
