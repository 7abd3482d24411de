"""Loading a local Hugging Face model folder: checks first, then 4-bit NF4 weights.

Checks run before any heavy import so a wrong folder fails in milliseconds with a
message that says what to do. On CUDA the base is NF4 with double quantization and bf16
(or fp16) compute; without CUDA the same bitsandbytes 4-bit path runs on the CPU.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from engine.config import ModelConfig, QuantizationConfig
from engine.errors import ModelError
from engine.models.folder import DAMAGED, ModelFolder, needs_remote_code, read_config
from engine.models.library import remote_code_consent
from engine.util.bnb_library import cuda_kernels_problem

__all__ = [
    "ModelFolder",
    "check_model_folder",
    "inspect_model_folder",
    "load_model",
    "load_tokenizer",
    "needs_remote_code",
    "read_config",
    "trust_remote_code",
]

log = logging.getLogger(__name__)


def inspect_model_folder(cfg: ModelConfig) -> ModelFolder:
    """Validate a model folder without importing torch; raise ModelError saying what is wrong.

    Custom code in the folder runs only with consent recorded in this workspace's model library
    (or `--allow-remote-code` on the command line), never because a run's or a project's config
    says `trust_remote_code = true`: such a file may have come from someone else.
    """
    if not cfg.path:
        raise ModelError("No model folder given.", "Pass --model DIR (a local Hugging Face model folder).")
    folder = ModelFolder.read(cfg.path)
    if folder.needs_remote_code and not remote_code_consent(folder.path):
        raise ModelError(
            f"{folder.path} needs its own Python code "
            f"(model_type {folder.config.get('model_type')!r} is not built into transformers), "
            "and this workspace's model library has not allowed it to run.",
            f"Only if you trust this folder: `whetstone-engine models allow-remote-code {folder.path}` "
            "(or allow it in the model library, or pass --allow-remote-code).",
        )
    folder.check_kind()  # a text-generation model of a type transformers knows
    folder.check_files(cfg.allow_pickle_weights)  # weights (headers included) and tokenizer files
    return folder


def check_model_folder(path: str | Path, allow_pickle_weights: bool = False) -> ModelFolder:
    """Every check except remote-code consent (shared with engine.models.info.describe_model)."""
    return ModelFolder.open(path, allow_pickle_weights)


def trust_remote_code(folder: ModelFolder) -> bool:
    """What to pass to transformers: True only for a folder that needs its code and has consent."""
    return folder.needs_remote_code and remote_code_consent(folder.path)


def pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_compute_dtype(name: str, device: str):
    """auto: bf16 on GPUs that support it (fp16 gives NaN losses on some models), else fp16; fp32 on CPU."""
    import torch

    if name == "auto":
        if device == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        # CPUs without AVX512-BF16 emulate bf16 slowly; fp32 was ~2x faster here.
        return torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 (or AMX): bf16 matrix products in hardware, about 2x the fp32 speed for inference."""
    import torch

    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    try:
        return bool(check and check())
    except RuntimeError:
        return False


def mixed_precision_dtype(quant: QuantizationConfig, device: str):
    """The autocast dtype of a training step on CUDA (bf16/fp16), or None for plain fp32.

    Decided from the configured compute dtype, not from the model: peft's k-bit preparation
    upcasts a 4-bit model's embeddings, norms and head to fp32, so its dtype says fp32 even
    though QLoRA is meant to run its matmuls, attention and logits in 16 bits.
    """
    import torch

    dtype = resolve_compute_dtype(quant.compute_dtype, device)
    return dtype if device == "cuda" and dtype in (torch.bfloat16, torch.float16) else None


def load_tokenizer(cfg: ModelConfig):
    from transformers import AutoTokenizer

    folder = inspect_model_folder(cfg)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(folder.path), trust_remote_code=trust_remote_code(folder), local_files_only=True
        )
    except Exception as exc:  # transformers raises many types for broken tokenizer files
        check_config(folder)  # AutoTokenizer reads config.json too: a bad one is not the tokenizer's fault
        raise ModelError(
            f"The tokenizer in {folder.path} cannot be loaded: {exc}", "Check the tokenizer files."
        ) from None
    if tokenizer.pad_token_id is None:
        # Padding positions are masked out of the loss by our own masks, so eos is a safe pad.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def check_config(folder: ModelFolder) -> None:
    """ModelError when transformers refuses the folder's config.json (values its model class rejects)."""
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(
            str(folder.path), trust_remote_code=trust_remote_code(folder), local_files_only=True
        )
    except Exception as exc:  # the config classes validate with several exception types
        config = folder.path / "config.json"
        raise ModelError(f"{config} is not a valid configuration: {exc}", DAMAGED) from None


def load_model(
    model_cfg: ModelConfig, quant_cfg: QuantizationConfig, device: str | None = None, attention: str = ""
):
    """Load the base model (4-bit NF4 unless disabled) onto `device` (default: CUDA if present).

    `attention`: an attention implementation (training.attention); empty: transformers' choice (sdpa).
    """
    import torch
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    folder = inspect_model_folder(model_cfg)
    device = device or pick_device()
    if quant_cfg.load_in_4bit and device == "cuda" and (problem := cuda_kernels_problem()):
        raise ModelError(
            f"{problem}.",
            "Run `whetstone-engine diagnostics` (bitsandbytes_backend, cuda_version) and reinstall "
            "Whetstone so that bitsandbytes has a library for torch's CUDA (the pinned one carries 11.8 "
            "to 13.2); CUDA_VISIBLE_DEVICES= trains on the CPU meanwhile.",
        )
    compute_dtype = resolve_compute_dtype(quant_cfg.compute_dtype, device)
    kwargs: dict[str, Any] = {
        "dtype": compute_dtype,
        # The current GPU: under torchrun each rank has set its own (device_map={"": local_rank}).
        "device_map": {"": torch.cuda.current_device() if device == "cuda" else device},
        "trust_remote_code": trust_remote_code(folder),
        "use_safetensors": True if not model_cfg.allow_pickle_weights else None,
        "local_files_only": True,
    }
    if attention:
        kwargs["attn_implementation"] = attention
    if quant_cfg.load_in_4bit:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=quant_cfg.quant_type,
            bnb_4bit_use_double_quant=quant_cfg.double_quant,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(str(folder.path), **kwargs)
    except torch.OutOfMemoryError:
        raise
    except (OSError, ValueError, KeyError, SafetensorError) as exc:
        raise ModelError(
            f"The model in {folder.path} cannot be loaded: {exc}", "Check that the folder is complete."
        ) from None
    neutralise_cpu_repacking(model)
    return model


def neutralise_cpu_repacking(model) -> int:
    """Stop bitsandbytes repacking 4-bit weights for CPU inference (DESIGN.md hazard).

    On CPUs with AVX512-BF16 the first no-grad eval forward repacks `Linear4bit` weights
    into an inference layout, after which LoRA gradients are silently wrong. Returns the
    number of layers changed.
    """
    import bitsandbytes as bnb

    count = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            count += 1
    return count


def end_of_turn_ids(tokenizer, model=None) -> list[int]:
    """Every token id that ends an assistant turn: eos, generation-config eos, and known markers."""
    ids: list[int] = []

    def add(value) -> None:
        for v in value if isinstance(value, list | tuple) else [value]:
            if isinstance(v, int) and v >= 0 and v not in ids:
                ids.append(v)

    add(tokenizer.eos_token_id)
    gen = getattr(model, "generation_config", None) if model is not None else None
    if gen is not None:
        add(gen.eos_token_id)
    vocab = tokenizer.get_vocab()
    for marker in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>"):
        if marker in vocab:
            add(vocab[marker])
    return ids
