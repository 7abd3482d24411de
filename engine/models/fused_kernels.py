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

from engine.util.triton_build import triton_build_problem

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
    if problem := triton_build_problem():
        return False, f"Liger's kernels cannot be built here: {problem}"
    return True, f"Liger's RMSNorm, RoPE and SwiGLU kernels replace transformers' for this {model_type} model"


def apply_fused_kernels(model) -> None:
    """Patch a loaded (not yet peft-wrapped) model's norms, MLPs and rotary embedding in place."""
    from liger_kernel.transformers import _apply_liger_kernel_to_instance

    _apply_liger_kernel_to_instance(model=model, **LIGER_KERNELS)


def fused_kernels_check(model, device: str) -> str | None:
    """Run Liger's RMSNorm, SwiGLU and RoPE once, forward and backward, on a few tokens of this model's
    sizes and dtype, against the plain computation: None when they agree, else what went wrong.

    Called before the model is patched, so a GPU or a toolchain the kernels cannot build or run on
    (Triton's compiler, an old GPU, a driver) leaves a run training with transformers' layers instead of
    stopping at its first step. The kernels it compiles are the ones training then uses (same sizes).
    """
    import torch

    try:  # a liger-kernel or triton that does not fit this torch fails here
        from liger_kernel.ops.swiglu import LigerSiLUMulFunction
        from liger_kernel.transformers.rms_norm import LigerRMSNorm
        from liger_kernel.transformers.rope import liger_rotary_pos_emb
    except Exception as exc:
        return f"it cannot be imported: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}"[:300]

    config = model.config
    hidden, heads = config.hidden_size, config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    dtype = model.get_input_embeddings().weight.dtype
    generator = torch.Generator().manual_seed(0)
    tokens = 4

    def rand(*shape: int):
        return torch.randn(*shape, generator=generator).to(device=device, dtype=dtype)

    def rms_norm(x, weight):  # transformers' LlamaRMSNorm
        x32 = x.float()
        return weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-6)).to(dtype)

    def rotate(q, k, cos, sin):  # transformers' apply_rotary_pos_emb
        def half(t):
            return torch.cat((-t[..., t.shape[-1] // 2 :], t[..., : t.shape[-1] // 2]), dim=-1)

        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        return q * cos + half(q) * sin, k * cos + half(k) * sin

    norm = LigerRMSNorm(hidden, eps=1e-6).to(device=device, dtype=dtype)
    with torch.no_grad():
        norm.weight.copy_(rand(hidden))
    angles = torch.arange(tokens, dtype=torch.float32)[:, None] * torch.linspace(0, 1, head_dim // 2)[None]
    angles = torch.cat((angles, angles), dim=-1)[None].to(device)
    cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)
    cases = {
        "RMSNorm": ((rand(1, tokens, hidden),), norm, lambda x: rms_norm(x, norm.weight)),
        "SwiGLU": (
            (rand(1, tokens, config.intermediate_size), rand(1, tokens, config.intermediate_size)),
            LigerSiLUMulFunction.apply,
            lambda a, b: torch.nn.functional.silu(a) * b,
        ),
        "RoPE": (
            (rand(1, heads, tokens, head_dim), rand(1, kv_heads, tokens, head_dim)),
            lambda q, k: liger_rotary_pos_emb(q, k, cos, sin),
            lambda q, k: rotate(q, k, cos, sin),
        ),
    }
    low_precision = dtype in (torch.bfloat16, torch.float16)
    tolerance = {"rtol": 2e-2, "atol": 2e-2} if low_precision else {"rtol": 1e-4, "atol": 1e-4}
    for name, (inputs, fused, plain) in cases.items():
        try:
            results = []
            for fn in (fused, plain):
                leaves = [t.detach().clone().requires_grad_() for t in inputs]
                outputs = fn(*[t.clone() for t in leaves])  # clones: Liger's RoPE and RMSNorm work in place
                outputs = outputs if isinstance(outputs, tuple) else (outputs,)
                sum(o.float().sum() * (i + 1) for i, o in enumerate(outputs)).backward()
                results.append([o.detach().float() for o in outputs] + [t.grad.float() for t in leaves])
            for got, want in zip(*results, strict=True):
                torch.testing.assert_close(got, want, **tolerance)
        except AssertionError as exc:
            lines = str(exc).splitlines()
            detail = next((line for line in lines if "absolute difference" in line), lines[0]).strip()
            return f"its {name} gives other values than transformers' ({detail})"
        except Exception as exc:  # Triton's compiler, the driver, an unsupported GPU: anything stops it
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return f"its {name} failed: {type(exc).__name__}: {first}"[:300]
    return None
