"""What to change when a run will not fit: settings that lower the memory estimate, with their savings.

Arithmetic on engine.models.memory_estimate (no torch), for the setup screen, `fit --estimate-only`
and the fit check's out-of-memory report.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.models.activation_offload import activation_offload_plan
from engine.models.memory_estimate import MemoryEstimate, estimate_training_memory, read_shapes
from engine.models.packing import padding_free_plan
from engine.util.files import format_size

if TYPE_CHECKING:
    from engine.config import RunConfig


def suggestions(estimate: MemoryEstimate, config: RunConfig, free_bytes: int) -> list[str]:
    """Settings changes that lower the estimate, biggest saving first, each with the figure it saves.

    A change marked "(then fits)" is enough on its own for `free_bytes`. Empty when nothing helps.
    """
    t, d, lora, q = config.training, config.data, config.lora, config.quantization
    options: list[tuple[int, str]] = []

    def consider(overrides: dict[str, Any], text: str, note: str = "") -> None:
        alt = estimate_training_memory(config.model.path, config.with_overrides(overrides), estimate.device)
        saved = estimate.total_bytes - alt.total_bytes
        if saved > max(16 * 2**20, estimate.total_bytes // 100):  # ignore changes that barely matter
            fits = " (then fits)" if alt.fits(free_bytes) else ""
            options.append(
                (saved, f"{text} saves ~{format_size(saved)}{fits}" + (f"; {note}" if note else ""))
            )

    def halve(field: str, now: int, low: int) -> int:
        """The largest halving of `now` (down to `low`) that fits, else the plain halving."""
        value = now // 2
        while value >= low:
            alt = estimate_training_memory(
                config.model.path, config.with_overrides({field: value}), estimate.device
            )
            if alt.fits(free_bytes) or value // 2 < low:
                return value
            value //= 2
        return max(low, now // 2)

    if t.method == "full":
        consider({"training.method": "sft"}, "training.method full → sft (4-bit base + LoRA)")
        layers = read_shapes(Path(config.model.path)).layers
        if t.full_layers.strip() == "all" and layers > 4:
            last = f"{layers - 4}-{layers - 1}"
            consider(
                {"training.full_layers": last},
                f'training.full_layers "{last}"',
                "only the last 4 layers train",
            )
    if t.batch_size > 1:
        b = halve("training.batch_size", t.batch_size, 1)
        keep = t.batch_size * t.gradient_accumulation // b
        consider(
            {"training.batch_size": b},
            f"training.batch_size {t.batch_size} → {b}",
            f"set gradient_accumulation {t.gradient_accumulation} → {keep} to keep the effective batch",
        )
    if d.max_length > 128:
        m = halve("data.max_length", d.max_length, 128)
        consider({"data.max_length": m}, f"data.max_length {d.max_length} → {m}", "longer rows are truncated")
    if not t.gradient_checkpointing:
        consider(
            {"training.gradient_checkpointing": True},
            "training.gradient_checkpointing on",
            "steps get ~25% slower",
        )
    if not t.activation_offload and activation_offload_plan(True, estimate.device, t.method)[0]:
        consider(
            {"training.activation_offload": True},
            "training.activation_offload on",
            "activations wait in CPU memory; steps slow down by the copies",
        )
    if not q.load_in_4bit:
        consider({"quantization.load_in_4bit": True}, "quantization.load_in_4bit on (QLoRA)")
    if lora.rank > 8:
        r = halve("lora.rank", lora.rank, 8)
        consider({"lora.rank": r}, f"lora.rank {lora.rank} → {r}")
    if lora.use_dora:
        consider({"lora.use_dora": False}, "lora.use_dora off")
    if lora.dropout > 0:
        consider({"lora.dropout": 0.0}, f"lora.dropout {lora.dropout} → 0")
    if t.chunked_loss is False:
        consider({"training.chunked_loss": "auto"}, 'training.chunked_loss "auto"', "the same loss")
    if padding_free_plan(t.padding_free, estimate.device, t.attention)[0]:
        consider(
            {"training.padding_free": False},
            "training.padding_free off",
            "with SDPA a packed batch needs a full (B·L)² mask per layer",
        )
    return [text for _, text in sorted(options, key=lambda o: -o[0])]


def full_shortfall(estimate: MemoryEstimate, config: RunConfig, free_bytes: int) -> str:
    """The verdict when full fine-tuning does not fit in `free_bytes`: what it needs, what LoRA needs."""
    if config.training.method != "full" or estimate.fits(free_bytes):
        return ""
    lora = estimate_training_memory(
        config.model.path, config.with_overrides({"training.method": "sft"}), estimate.device
    )
    then = "which fits" if lora.fits(free_bytes) else "with the changes below"
    return (
        f"Full fine-tuning needs ~{format_size(estimate.total_bytes)}; "
        f"this GPU has {format_size(free_bytes)} free: use LoRA "
        f"(training.method sft, ~{format_size(lora.total_bytes)}, {then})."
    )
