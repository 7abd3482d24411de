"""What a failure during training means to the user: out of memory, a full disk, or a bug."""

from __future__ import annotations

import errno
import math
import shutil
from pathlib import Path

from engine.config import RunConfig
from engine.errors import UserError, is_gpu_out_of_memory, is_out_of_memory

_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# How libraries word a full disk when they do not raise OSError: safetensors (Rust io::Error),
# torch.save's stream writer, plain C stdio.
_FULL_WORDS = ("no space left on device", "os error 28", "storagefull", "disk quota exceeded")
# torch.save says only this when a write fails; with the disk (almost) full it is the disk.
_WRITE_FAILED_WORDS = ("file write failed", "unexpected pos")
_LOW_SPACE = 512 * 2**20


def oom_error(config: RunConfig, gpu: bool = False) -> UserError:
    """`gpu`: GPU memory ran out (not RAM), where other programs may hold part of it."""
    t, d = config.training, config.data
    steps = [
        f"lower training.batch_size (now {t.batch_size}; raise gradient_accumulation to keep "
        "the effective batch)"
    ]
    steps.append(f"shorten data.max_length (now {d.max_length})")
    if t.gradient_checkpointing is not True:  # off, or "auto" that decided off
        steps.append("turn on training.gradient_checkpointing")
    if config.lora.rank > 16:
        steps.append(f"lower lora.rank (now {config.lora.rank})")
    if gpu:  # the app frees the Chat tab's model when a run starts, not an evaluation that is running
        steps.append(
            "close other programs that use the GPU (an evaluation in the Evaluate tab; nvidia-smi lists them)"
        )
    return UserError("Out of memory while training.", "Try: " + "; ".join(steps) + ".", kind="oom")


def load_oom_error(config: RunConfig, device: str, free_bytes: int | None) -> UserError:
    """Out of memory while the base model was loading: its weights alone do not fit (batch size,
    length or checkpointing change nothing there, unlike an out-of-memory while training)."""
    from engine.models import memory_estimate as me
    from engine.util.units import format_size

    where = "GPU memory" if device == "cuda" else "RAM"
    try:
        parts = me.estimate_training_memory(config.model.path, config, device).parts
        weights = sum(p.bytes for p in parts if p.name in (me.WEIGHTS_4BIT, me.UNQUANTIZED, me.WEIGHTS_FULL))
        need = f": its weights alone need about {format_size(weights)}"
    except Exception:  # an architecture the estimate cannot read: say it without the figure
        need = ""
    free = f", and {format_size(free_bytes)} was free" if free_bytes else ""
    if device == "cuda":
        hint = (
            "Pick a smaller model, close other programs that use the GPU (nvidia-smi lists them), or "
            "train on the CPU (CUDA_VISIBLE_DEVICES= hides the GPU)."
        )
    else:
        hint = "Pick a smaller model, or close other programs to free RAM."
    return UserError(f"Out of memory while loading the model into {where}{need}{free}.", hint, kind="oom")


def diverged_error(config: RunConfig, device: str, step: int, loss: float, kept: Path | None) -> UserError:
    """The training loss became NaN or infinite at `step`; `kept`: the last complete checkpoint."""
    import torch

    from engine.models.loading import mixed_precision_dtype

    t = config.training
    what = "NaN (not a number)" if math.isnan(loss) else "infinite"
    saved = f"the last complete checkpoint, {kept.name}, is kept" if kept else "no checkpoint came before it"
    steps = []
    if mixed_precision_dtype(config.quantization, device) == torch.float16:
        steps.append(
            "set quantization.compute_dtype = fp32 (this GPU computes in float16, whose range some "
            "models overflow)"
        )
    steps.append(f"lower training.learning_rate (now {t.learning_rate:g})")
    if t.max_grad_norm <= 0:
        steps.append("turn gradient clipping back on (training.max_grad_norm = 1.0)")
    return UserError(
        f"The training loss became {what} at step {step}: the run stopped there and saved nothing after "
        f"it ({saved}).",
        "Try: " + "; ".join(steps) + ". Then start the run again.",
        kind="diverged",
    )


def disk_full_error(where: str | Path) -> UserError:
    hint = "Free some space, then continue with --resume: complete checkpoints are kept."
    return UserError(f"The disk is full ({where}).", hint, kind="io")


def _chain(exc: BaseException):
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_disk_full(exc: BaseException, folder: Path | None) -> bool:
    """Whether `exc` (or what caused it) is a write that failed for want of space."""
    for link in _chain(exc):
        if isinstance(link, OSError) and link.errno in _FULL_ERRNOS:
            return True
        text = str(link).lower()
        if any(word in text for word in _FULL_WORDS):
            return True
        if folder is not None and any(word in text for word in _WRITE_FAILED_WORDS):
            try:
                return shutil.disk_usage(folder).free < _LOW_SPACE
            except OSError:
                return False
    return False


def as_user_error(exc: BaseException, config: RunConfig, run_dir: Path | None) -> UserError | None:
    """The user-fixable meaning of an exception (bad input, out of memory, full disk), if it has one."""
    if isinstance(exc, UserError):
        return exc
    if is_out_of_memory(exc):
        return oom_error(config, gpu=is_gpu_out_of_memory(exc))
    if is_disk_full(exc, run_dir):
        where = next((link.filename for link in _chain(exc) if getattr(link, "filename", None)), None)
        return disk_full_error(where or run_dir)
    return None
