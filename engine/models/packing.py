"""Whether a run packs its batches padding-free: training.padding_free ("auto", true, false) on a device.

A packed batch is one row whose position ids restart at 0 for every sequence; transformers turns
those into a per-sequence causal mask. How it does that depends on the attention implementation
(transformers 5.x masking_utils): SDPA and eager get a dense boolean (T, T) mask over the packed
row, flash attention gets cu_seqlens for its varlen kernels and flex attention a sparse BlockMask.
On the CPU, with length-grouped batches, padded batches train faster than packed ones
(benchmarks/train_throughput.py, demo model, one epoch of 64 rows on a quiet machine: padded 150.8
tokens/s, packed 123.0, the plain Trainer 99.7), so "auto" pads there. On CUDA the dense mask grows with
the square of the packed tokens and SDPA then leaves its fused kernels, so "auto" packs there only with
a varlen-capable attention.

The recipe (engine.training.recipe) still checks `packing_is_exact` on the run's rows before it
trains a single packed step; the memory estimate and the fit check use `padding_free_plan`.
"""

from __future__ import annotations

from engine.util.triton_build import triton_build_problem

# Attention implementations that take packed sequences without a dense (T, T) mask.
VARLEN_ATTENTION = ("flash_attention_2", "flash_attention_3", "flash_attention_4", "flex_attention")
# What engine.models.loading.load_model gets from transformers: it names no implementation.
DEFAULT_ATTENTION = "sdpa"


def padding_free_plan(setting: bool | str, device: str, attention: str | None = None) -> tuple[bool, str]:
    """(pack?, why) for a setting on a device with an attention implementation (default: SDPA).

    The answer comes before the exactness check: a model whose attention ignores packed position
    ids still goes back to padded batches in the recipe.
    """
    attention = attention or DEFAULT_ATTENTION
    if setting is False:
        return False, "training.padding_free = false"
    if setting is True:
        if device == "cuda" and attention not in VARLEN_ATTENTION:
            return True, f"training.padding_free = true ({attention} attention builds a dense mask)"
        return True, "training.padding_free = true"
    if device != "cuda":
        return False, (
            f'training.padding_free = "auto" on the {device.upper()}, where padded, length-grouped '
            "batches train faster"
        )
    if attention in VARLEN_ATTENTION:
        return True, f'training.padding_free = "auto" with {attention}, which needs no dense mask'
    return False, (
        f'training.padding_free = "auto" on CUDA with {attention} attention, which would build a '
        "dense mask over the packed batch"
    )


def training_attention(setting: str, device: str) -> tuple[str, str]:
    """(implementation, why) that training loads the model with, for training.attention on a device.

    torch's flex attention has no backward pass on the CPU (torch 2.13), so there it trains with SDPA;
    on CUDA torch.compile builds it with Triton, which needs build tools (engine.util.triton_build).
    """
    if setting == "flex_attention" and device != "cuda":
        return (
            DEFAULT_ATTENTION,
            f"flex attention cannot train on the {device.upper()} (no backward pass there)",
        )
    if setting == "flex_attention" and (problem := triton_build_problem()):
        return DEFAULT_ATTENTION, f"flex attention is compiled by Triton, which cannot build here: {problem}"
    return setting, f"training.attention = {setting}"


def model_attention(model) -> str:
    """The attention implementation a loaded (or peft-wrapped) model runs with."""
    config = getattr(model, "config", None)
    return getattr(config, "_attn_implementation", None) or DEFAULT_ATTENTION
