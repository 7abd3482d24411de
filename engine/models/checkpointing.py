"""Whether a run recomputes activations: training.gradient_checkpointing ("auto", true, false).

Checkpointing keeps one hidden state per layer and recomputes each layer during the backward pass:
it saves most of the activation memory and costs one more forward pass per step. Most tuning
recipes (peft's prepare_model_for_kbit_training among them) turn it on always; "auto" turns it on
only when the run needs it: when the memory estimate without it (engine.models.memory_estimate) is
more than AUTO_SHARE of the memory free when the run starts. A small model, or a short context on a
big GPU, then trains without the recomputation; a run that would be tight keeps it.

Pure arithmetic on the estimate (no torch), so the setup screen can show the same decision.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.util.files import format_size

if TYPE_CHECKING:
    from engine.config import RunConfig

AUTO_SHARE = 0.5
""""auto" trains without checkpointing when that needs at most this share of the free memory:
the rest is headroom for evaluation batches, longer rows than estimated and the user's other programs."""


def checkpointing_plan(
    model_path: str | Path, config: RunConfig, device: str, free_bytes: int | None
) -> tuple[bool, str]:
    """(checkpoint?, why) for config's training.gradient_checkpointing on a device with `free_bytes` free.

    "auto" with no figure for the free memory (a GPU the caller cannot see) keeps checkpointing on.
    """
    from engine.models.memory_estimate import estimate_training_memory

    setting = config.training.gradient_checkpointing
    if isinstance(setting, bool):
        return setting, f"training.gradient_checkpointing = {str(setting).lower()}"
    if free_bytes is None:
        return True, 'training.gradient_checkpointing = "auto", and the free memory is not known'
    without = estimate_training_memory(
        model_path, config.with_overrides({"training.gradient_checkpointing": False}), device
    )
    need, free = format_size(without.total_bytes), format_size(free_bytes)
    if without.total_bytes <= AUTO_SHARE * free_bytes:
        return False, (
            f'training.gradient_checkpointing = "auto": without it the run needs about {need} of the '
            f"{free} free, so no layer is recomputed"
        )
    return True, (
        f'training.gradient_checkpointing = "auto": without it the run would need about {need}, more '
        f"than half of the {free} free"
    )


def with_checkpointing_decided(
    model_path: str | Path, config: RunConfig, device: str, free_bytes: int | None
) -> tuple[RunConfig, str]:
    """The config with training.gradient_checkpointing a bool (as checkpointing_plan decides), and why."""
    on, why = checkpointing_plan(model_path, config, device, free_bytes)
    return config.with_overrides({"training.gradient_checkpointing": on}), why


def free_device_memory(device: str) -> int | None:
    """Bytes free now where a run trains: the GPU's free memory on CUDA, available RAM on the CPU."""
    if device == "cpu":
        from engine.models.cpu_weights import free_memory_bytes

        return free_memory_bytes()
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    return None
