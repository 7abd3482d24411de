"""training.fused_kernels: Liger's Triton kernels for RMSNorm, RoPE and SwiGLU on CUDA.

Liger (the `liger-kernel` package, installed with `pip install ".[cuda]"`, which scripts/install
does when torch is a CUDA build) fuses the elementwise parts of a decoder layer into single Triton
kernels: fewer launches and fewer intermediate tensors (the SwiGLU product recomputes its
activation in the backward instead of keeping it). Its fused linear + cross-entropy is not used:
the engine's own chunked loss (engine.training.chunked_loss) already keeps the logits small.
The kernels run on CUDA only; everywhere else the layers stay transformers' own.

The decision reads config.json and looks for the package without importing it (no torch), so the
memory estimate can make it on the setup screen.
"""

from __future__ import annotations

import functools
import importlib.util

# Text decoders whose Liger patch covers RMSNorm, RoPE and a SwiGLU MLP (liger_kernel 0.8.5's
# MODEL_TYPE_TO_APPLY_LIGER_FN has more, with other activations or vision towers).
LIGER_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "phi3", "granite", "olmo2", "smollm3")
# What the patch replaces: not the loss (chunked by the engine), not cross-entropy.
LIGER_KERNELS = dict(
    rope=True, rms_norm=True, swiglu=True, cross_entropy=False, fused_linear_cross_entropy=False
)
INSTALL_HINT = 'pip install ".[cuda]" (liger-kernel, pinned in constraints.txt)'


@functools.cache  # the memory estimate asks on every settings change; an install does not change mid-process
def liger_installed() -> bool:
    return importlib.util.find_spec("liger_kernel") is not None


def fused_kernels_plan(setting: bool | str, device: str, model_type: str) -> tuple[bool, str]:
    """(fuse?, why) for training.fused_kernels on a device, for a model's config.json model_type."""
    if setting is False:
        return False, "training.fused_kernels = false"
    if device != "cuda":
        return False, f"Liger's kernels are Triton kernels for CUDA, not the {device.upper()}"
    if model_type not in LIGER_MODEL_TYPES:
        return False, f"Liger has no RMSNorm/RoPE/SwiGLU kernels for {model_type or 'this'} models"
    if not liger_installed():
        return False, f"the liger-kernel package is not installed: {INSTALL_HINT}"
    return True, f"Liger's RMSNorm, RoPE and SwiGLU kernels replace transformers' for this {model_type} model"


def apply_fused_kernels(model) -> None:
    """Patch a loaded (not yet peft-wrapped) model's norms, MLPs and rotary embedding in place."""
    from liger_kernel.transformers import _apply_liger_kernel_to_instance

    _apply_liger_kernel_to_instance(model=model, **LIGER_KERNELS)
