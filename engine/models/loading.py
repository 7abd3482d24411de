"""Loading a local Hugging Face model folder: checks first, then 4-bit NF4 weights.

Checks run before any heavy import so a wrong folder fails in milliseconds with a
message that says what to do. On CUDA the base is NF4 with double quantization and bf16
(or fp16) compute; without CUDA the same bitsandbytes 4-bit path runs on the CPU.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config import ModelConfig, QuantizationConfig
from engine.errors import ModelError

log = logging.getLogger(__name__)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


@dataclass
class ModelFolder:
    path: Path
    config: dict[str, Any]
    has_safetensors: bool
    needs_remote_code: bool


def inspect_model_folder(cfg: ModelConfig) -> ModelFolder:
    """Validate a model folder without importing torch; raise ModelError saying what is wrong."""
    if not cfg.path:
        raise ModelError("No model folder given.", "Pass --model DIR (a local Hugging Face model folder).")
    folder = check_model_folder(cfg.path, allow_pickle_weights=cfg.allow_pickle_weights)
    if folder.needs_remote_code and not cfg.trust_remote_code:
        raise ModelError(
            f"{folder.path} needs its own Python code "
            f"(model_type {folder.config.get('model_type')!r} is not built into transformers).",
            "Only if you trust this folder, set model.trust_remote_code = true.",
        )
    return folder


def check_model_folder(path: str | Path, allow_pickle_weights: bool = False) -> ModelFolder:
    """Every check except remote-code consent (shared with engine.models.library.describe_model)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"Model folder {path} does not exist.", "Check the path; models are never downloaded.")
    if not path.is_dir():
        if path.suffix.lower() == ".gguf":
            hint = "Convert it into a model folder first: `whetstone-engine models import-gguf FILE`."
        else:
            hint = "Pass the folder that holds config.json."
        raise ModelError(f"{path} is a file, not a model folder.", hint)
    config_file = path / "config.json"
    if not config_file.is_file():
        if (path / "adapter_config.json").is_file():
            raise ModelError(f"{path} is a LoRA adapter, not a base model.",
                             "Pick the base model folder; the adapter is loaded on top of it.")
        raise ModelError(
            f"{path} is not a Hugging Face model folder: config.json is missing.",
            "Pick the folder that holds config.json and *.safetensors.",
        )
    config = read_config(config_file)

    files = [p.name for p in path.iterdir() if p.is_file()]
    has_safetensors = any(n.endswith(".safetensors") for n in files)
    has_pickle = any(n.endswith(PICKLE_SUFFIXES) for n in files)
    if not has_safetensors and not has_pickle:
        raise ModelError(f"{path} has no weights (*.safetensors).", "Copy the model's weight files into the folder.")
    if not has_safetensors and not allow_pickle_weights:
        raise ModelError(
            f"{path} has only pickle weights (.bin/.pt), which can run code when loaded.",
            "Convert them to safetensors, or set model.allow_pickle_weights = true if you trust this folder.",
        )
    if not any(n in files for n in TOKENIZER_FILES):
        raise ModelError(f"{path} has no tokenizer files.", "Copy tokenizer.json / tokenizer_config.json next to the weights.")
    return ModelFolder(path, config, has_safetensors, needs_remote_code(config))


def read_config(config_file: Path) -> dict[str, Any]:
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise ModelError(f"{config_file} cannot be read: {exc}.", "The model folder looks damaged; copy it again.") from None
    return config


def needs_remote_code(config: dict[str, Any]) -> bool:
    """The config asks for its own code (auto_map) and transformers has no built-in class for it."""
    from engine.models.types import builtin_model_types  # reads files; does not import transformers

    return bool(config.get("auto_map")) and config.get("model_type") not in builtin_model_types()


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
            str(folder.path), trust_remote_code=cfg.trust_remote_code, local_files_only=True
        )
    except Exception as exc:  # transformers raises many types for broken tokenizer files
        raise ModelError(f"The tokenizer in {folder.path} cannot be loaded: {exc}", "Check the tokenizer files.") from None
    if tokenizer.pad_token_id is None:
        # Padding positions are masked out of the loss by our own masks, so eos is a safe pad.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(model_cfg: ModelConfig, quant_cfg: QuantizationConfig, device: str | None = None):
    """Load the base model (4-bit NF4 unless disabled) onto `device` (default: CUDA if present)."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    folder = inspect_model_folder(model_cfg)
    device = device or pick_device()
    compute_dtype = resolve_compute_dtype(quant_cfg.compute_dtype, device)
    kwargs: dict[str, Any] = {
        "dtype": compute_dtype,
        # The current GPU: under torchrun each rank has set its own (device_map={"": local_rank}).
        "device_map": {"": torch.cuda.current_device() if device == "cuda" else device},
        "trust_remote_code": model_cfg.trust_remote_code,
        "use_safetensors": True if not model_cfg.allow_pickle_weights else None,
        "local_files_only": True,
    }
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
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"The model in {folder.path} cannot be loaded: {exc}", "Check that the folder is complete.") from None
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
