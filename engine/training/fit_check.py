"""A real "will it fit?" check: a few training steps on the worst-case batch of the real data.

It sets up through the training recipe itself (engine.training.recipe: model folder checks,
tokenizer, data preparation, 4-bit loading, LoRA, the collator), so it measures the run the user
would start: every measured batch is the `batch_size` longest training rows, and each step is
forward + backward + AdamW over the trainable parameters, under the precision Trainer uses.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from engine.config import PREFERENCE_METHODS, RunConfig
from engine.data.preference import as_sequences
from engine.errors import Cancelled
from engine.models.memory_estimate import MemoryEstimate, estimate_training_memory, suggestions
from engine.models.packing import padding_free_plan
from engine.util.files import format_size

if TYPE_CHECKING:
    from engine.training.recipe import TrainingRecipe

MAX_MICRO_BATCHES = 2  # gradient accumulation repeats the same shapes: time two, scale to the rest


@dataclass
class FitReport:
    fits: bool
    device: str  # "cuda" or "cpu"
    peak_memory_bytes: int  # torch.cuda.max_memory_allocated on CUDA; process peak RSS on CPU
    memory_kind: str  # "cuda_allocated" or "process_rss"
    free_memory_bytes: int | None  # GPU memory free before loading; None on CPU
    seconds_per_step: float | None
    tokens_per_second: float | None
    total_steps: int
    eta_seconds: float | None
    sequence_length: int  # the longest (padded) sequence length measured
    estimate: MemoryEstimate  # the estimate for the measured batch shape, for comparison
    message: str
    suggestions: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["estimate"] = self.estimate.as_dict()
        return out


def total_steps(config: RunConfig, train_rows: int) -> int:
    """Optimizer steps of the configured run, as Trainer counts them."""
    t = config.training
    if t.max_steps > 0:
        return t.max_steps
    per_epoch = max(math.ceil(train_rows / (t.batch_size * t.gradient_accumulation)), 1)
    return math.ceil(t.epochs * per_epoch)


def fit_check(
    config: RunConfig,
    steps: int = 3,
    progress: Callable[[str], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> FitReport:
    """Load the model and run `steps` optimizer steps (the first is warm-up) on the longest rows.

    Out of memory is an answer (fits=False), not an error. Raises UserError for bad input and
    Cancelled when `cancelled()` turns true between phases or steps.
    """
    from engine.training.distributed import Ranks
    from engine.training.recipe import TrainingRecipe

    say = progress or (lambda _message: None)

    def check() -> None:
        if cancelled is not None and cancelled():
            raise Cancelled("The fit check was cancelled.")

    recipe = TrainingRecipe(config, ranks=Ranks())  # no run folder: nothing is written
    say("Checking the model folder and data…")
    recipe.check_inputs()
    check()
    say("Tokenizing the data…")
    recipe.setup_data()
    rows = recipe.data.train
    steps_total = total_steps(recipe.config, len(rows))
    if config.training.method in PREFERENCE_METHODS:
        # A preference step runs every answer of its rows (a pair: chosen and rejected) forward and
        # backward; measured as those sequences (the reference pass adds time, not memory held).
        longest_rows = sorted(rows, key=_preference_length, reverse=True)[: config.training.batch_size]
        longest = [seq for row in longest_rows for seq in as_sequences(row)]
        rows = [seq for row in rows for seq in as_sequences(row)]
        mean_tokens = sum(len(row["input_ids"]) for row in rows) / len(recipe.data.train)
    else:
        longest = sorted(rows, key=lambda row: len(row["input_ids"]), reverse=True)[
            : config.training.batch_size
        ]
        mean_tokens = sum(len(row["input_ids"]) for row in rows) / len(rows)
    check()
    return _measure(recipe, longest, max(1, steps), steps_total, mean_tokens, say, check)


def _preference_length(example: dict) -> int:
    return sum(len(seq["input_ids"]) for seq in as_sequences(example))


def _measure(
    recipe: TrainingRecipe,
    longest: list[dict],
    steps: int,
    steps_total: int,
    mean_tokens: float,
    say: Callable[[str], None],
    check: Callable[[], None],
) -> FitReport:
    import torch

    from engine.training.trainer import collator

    config, device, train_rows = recipe.config, recipe.device, recipe.data.train  # before the model
    t = config.training
    free = None
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        free = torch.cuda.mem_get_info()[0]
    recipe.decide_checkpointing()  # "auto" as training decides it, from the memory free now
    config, t = recipe.config, recipe.config.training
    # "auto" as the recipe will decide it for this device (the exactness check comes with the model).
    packed = padding_free_plan(t.padding_free, device, t.attention)[0]
    planned = config.with_overrides({"training.padding_free": packed})
    batch = collator(planned, recipe.tokenizer, device)(longest)
    seq_len = batch["input_ids"].shape[1] if not packed else max(len(r["input_ids"]) for r in longest)
    estimate = _estimate(config, len(longest), seq_len, device)
    timings: list[float] = []
    phase: list[str] = ["load"]
    try:
        _run_steps(recipe, longest, batch, steps, say, check, phase, timings)
        oom = False
    except (torch.OutOfMemoryError, MemoryError):
        oom = True  # handled after this block, once the traceback (and the tensors it holds) is gone
    finally:
        peak = _peak_memory(device)
        reserved = torch.cuda.max_memory_reserved() if device == "cuda" else 0
        batch = None
        recipe.release_model()
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    if oom:
        return _oom_report(config, device, peak, free, steps_total, seq_len, estimate, phase[0])
    seconds_per_step = sum(timings) / len(timings)
    tokens_per_step = sum(len(r["input_ids"]) for r in longest) * t.gradient_accumulation
    tokens_per_second = tokens_per_step / seconds_per_step
    # The measured rows are the longest; an average step carries batch × accumulation mean-length rows.
    eta = (
        steps_total
        * min(len(train_rows), t.batch_size * t.gradient_accumulation)
        * mean_tokens
        / tokens_per_second
    )
    where = (
        f"{format_size(peak)} of {format_size(free)} free on the GPU"
        if device == "cuda"
        else f"process peak {format_size(peak)} of RAM (no CUDA GPU: measured on the CPU)"
    )
    message = f"Fits: {where} at sequence length {seq_len} with batch size {t.batch_size}."
    if free is not None and reserved > 0.95 * free:
        message += " Only just: leave the GPU to this run."
    return FitReport(
        True,
        device,
        peak,
        _memory_kind(device),
        free,
        seconds_per_step,
        tokens_per_second,
        steps_total,
        eta,
        seq_len,
        estimate,
        message,
        [],
    )


def _run_steps(
    recipe: TrainingRecipe,
    longest: list[dict],
    batch: dict,
    steps: int,
    say: Callable[[str], None],
    check: Callable[[], None],
    phase: list[str],
    timings: list[float],
) -> None:
    """Load, then time the steps; everything big lives in this frame (and the recipe, released after)."""
    import torch

    from engine.training.trainer import collator

    config, device = recipe.config, recipe.device
    t = config.training
    say("Loading the model…")
    recipe.setup_model()  # as training does: "auto" decided, packing off where it is not exact
    model = recipe.model
    model.train()
    if t.padding_free is not recipe.config.training.padding_free:
        batch = collator(recipe.config, recipe.tokenizer, device)(longest)
    batch = {k: v.to(device) for k, v in batch.items()}
    params = [p for p in model.parameters() if p.requires_grad]
    # Trainer's default optimizer with torch >= 2.8 is fused AdamW (two fp32 moments per parameter).
    optimizer = torch.optim.AdamW(params, lr=t.learning_rate, weight_decay=t.weight_decay, fused=True)
    micro = min(t.gradient_accumulation, MAX_MICRO_BATCHES)
    phase[0] = "train"
    for step in range(steps):
        check()
        say(f"Step {step + 1} of {steps}…")
        seconds = _step(model, batch, optimizer, params, micro, recipe.config, device)  # as decided
        if step > 0 or steps == 1:  # the first step pays for kernel selection and allocator growth
            timings.append(seconds)


def _autocast(config: RunConfig, device: str):
    """Trainer's precision, decided by the same function engine.training.recipe uses."""
    import contextlib

    import torch

    from engine.models.loading import mixed_precision_dtype

    dtype = mixed_precision_dtype(config.quantization, device)
    return torch.autocast("cuda", dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _step(model, batch, optimizer, params, micro: int, config: RunConfig, device: str) -> float:
    """One optimizer step: `micro` micro-batches (timed, scaled to gradient_accumulation) + clip + AdamW."""
    import torch

    from engine.models.activation_offload import offloading
    from engine.training.chunked_loss import model_loss

    t = config.training

    def sync() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    start = sync()
    for _ in range(micro):
        with offloading(t.activation_offload, device):  # as EngineTrainer.training_step
            with _autocast(config, device):
                # As in Trainer: chunked where training.chunked_loss allows, outputs dropped before backward.
                loss = model_loss(model, batch, t.chunked_loss)
            (loss / t.gradient_accumulation).backward()
        del loss
    middle = sync()
    if t.max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    end = sync()
    return (middle - start) * t.gradient_accumulation / micro + (end - middle)


def _estimate(config: RunConfig, rows: int, seq_len: int, device: str) -> MemoryEstimate:
    """The estimate for the batch actually measured (its rows may be fewer or shorter than configured)."""
    from engine.errors import ModelError

    shaped = config.with_overrides({"data.max_length": max(8, seq_len), "training.batch_size": rows})
    try:
        return estimate_training_memory(config.model.path, shaped, device)
    except ModelError:  # an architecture the arithmetic does not know: the measurement still counts
        return MemoryEstimate((), 0, 0, device)


def _oom_report(
    config: RunConfig,
    device: str,
    peak: int,
    free: int | None,
    steps_total: int,
    seq_len: int,
    estimate: MemoryEstimate,
    phase: str,
) -> FitReport:
    from engine.training.failures import oom_error

    t = config.training
    where = "while loading the model, before " if phase == "load" else "at "
    message = f"Out of memory {where}sequence length {seq_len} with batch size {t.batch_size}."
    tips = [oom_error(config).hint]
    if estimate.parts:  # an architecture the arithmetic knows
        full = estimate_training_memory(config.model.path, config, device)
        # Aim the tips at what was really available: where the estimate thought it fits, it was optimistic.
        budget = free if free is not None and not full.fits(free) else int(full.total_bytes * 0.9)
        tips = suggestions(full, config, budget) + tips
    return FitReport(
        False,
        device,
        peak,
        _memory_kind(device),
        free,
        None,
        None,
        steps_total,
        None,
        seq_len,
        estimate,
        message,
        tips,
    )


def _peak_memory(device: str) -> int:
    from engine.training.callbacks import peak_memory_mb

    return int(peak_memory_mb(device) * 2**20)


def _memory_kind(device: str) -> str:
    return "cuda_allocated" if device == "cuda" else "process_rss"


__all__ = ["FitReport", "fit_check", "total_steps"]
