"""Full fine-tuning: the base's own weights trained (all of them, or chosen decoder layers).

No quantization and no adapter: the base is loaded in bf16 on CUDA (fp32 with fp16 autocast on a
GPU without bf16) and in fp32 on the CPU, and `requires_grad` is left on only for what
training.full_layers names. The run's output is a whole Hugging Face model folder
(RUN_DIR/model), written into a staging folder and moved into place, so it is whole or absent.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from engine.config import ModelConfig, QuantizationConfig, parse_layers
from engine.errors import ConfigError, ModelError
from engine.models.loading import end_of_turn_ids, load_model
from engine.util.files import discard_temp_dir, make_temp_dir, replace_dir

# Files of a checkpoint that make up the model itself (the optimizer and RNG states stay behind).
_MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors.index.json")


def full_quantization(quant_cfg: QuantizationConfig, device: str) -> QuantizationConfig:
    """Unquantized; the configured 16-bit dtype ("auto": bf16, else fp16) on CUDA, fp32 on the CPU."""
    if device == "cuda":
        import torch

        from engine.models.loading import resolve_compute_dtype

        if resolve_compute_dtype(quant_cfg.compute_dtype, device) == torch.float16:
            # Trainer's fp16 loss scaling needs fp32 weights (fp16 ones fail to unscale): fp32 weights
            # with fp16 autocast, as mixed precision means on a GPU without bf16.
            return replace(quant_cfg, load_in_4bit=False, compute_dtype="fp32")
        return replace(quant_cfg, load_in_4bit=False)
    # 16-bit weights on a CPU train slowly and round small updates away; fp32 is the CPU's dtype.
    return replace(quant_cfg, load_in_4bit=False, compute_dtype="fp32")


def load_full_model(
    model_cfg: ModelConfig,
    quant_cfg: QuantizationConfig,
    device: str,
    full_layers: str = "all",
    gradient_checkpointing: bool = False,
    attention: str = "",
):
    """The base, unquantized, with gradients only where `full_layers` says ("all": every weight).

    With chosen layers the embeddings, the head, the final norm and the other layers are frozen.
    ConfigError (one line) when a layer number is beyond the model's layers.
    """
    try:
        chosen = parse_layers(full_layers)
    except ValueError:
        raise ConfigError(
            f"training.full_layers = {full_layers!r} is not a layer list.",
            'Write "all", or layer numbers and ranges like "0-3,22".',
        ) from None
    model = load_model(model_cfg, full_quantization(quant_cfg, device), device, attention)
    # Training never needs a KV cache, and a cache disables transformers' packed-sequence masks.
    model.config.use_cache = False
    if chosen is None:
        for param in model.parameters():
            param.requires_grad_(True)
    else:
        choose_layers(model, chosen)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if chosen is not None:
        # Frozen embeddings give inputs without grad; checkpointed layers still need a grad path in.
        model.enable_input_require_grads()
    return model


def decoder_layers(model):
    """The model's list of decoder layers (the ModuleList as long as config.num_hidden_layers)."""
    import torch

    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    count = getattr(config, "num_hidden_layers", None)
    for _name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count:
            return module
    raise ConfigError(
        f"training.full_layers cannot pick layers of this model ({type(model).__name__}): "
        "its decoder layers were not found.",
        'Set training.full_layers = "all".',
    )


def choose_layers(model, chosen: set[int]) -> None:
    """Freeze every weight, then let the chosen decoder layers train."""
    layers = decoder_layers(model)
    beyond = sorted(n for n in chosen if n >= len(layers))
    if beyond:
        raise ConfigError(
            f"training.full_layers names layer {beyond[0]}, but this model has {len(layers)} layers "
            f"(0-{len(layers) - 1}).",
            f'Pick layers from 0 to {len(layers) - 1}, or "all".',
        )
    for param in model.parameters():
        param.requires_grad_(False)
    for n in sorted(chosen):
        for param in layers[n].parameters():
            param.requires_grad_(True)


def trainable_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts, as peft's get_nb_trainable_parameters gives for LoRA."""
    trainable = total = 0
    for param in model.parameters():
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return trainable, total


def save_full_model(model, tokenizer, folder: str | Path, source: Path | None = None) -> Path:
    """Write a complete model folder (weights, config, generation config, tokenizer, chat template).

    Whole or not at all: written into `.<folder>.partial` beside it and moved into place. `source`:
    a complete checkpoint whose model files are copied instead of the model's current weights.
    """
    folder = Path(folder)
    staging = folder.with_name(f".{folder.name}.partial")
    make_temp_dir(staging)  # a leftover of a killed save is removed; a folder we did not make is refused
    try:
        if source is None:
            _save_weights(model, tokenizer, staging)
        else:
            _copy_checkpoint(Path(source), staging)
        tokenizer.save_pretrained(str(staging))
        replace_dir(staging, folder)
    except BaseException:
        discard_temp_dir(staging)
        raise
    return folder


def _save_weights(model, tokenizer, staging: Path) -> None:
    gen = model.generation_config
    saved = model.config.use_cache, gen.eos_token_id, gen.pad_token_id
    # The folder is for generation: a KV cache on, and every end-of-turn token stops a reply.
    model.config.use_cache = True
    gen.eos_token_id = end_of_turn_ids(tokenizer, model)
    if gen.pad_token_id is None and tokenizer.pad_token_id is not None:
        gen.pad_token_id = tokenizer.pad_token_id
    try:
        model.save_pretrained(str(staging), safe_serialization=True)
    finally:
        model.config.use_cache, gen.eos_token_id, gen.pad_token_id = saved


def _copy_checkpoint(source: Path, staging: Path) -> None:
    copied = 0
    for path in source.iterdir():
        if path.is_file() and (path.name in _MODEL_FILES or path.suffix == ".safetensors"):
            shutil.copy2(path, staging / path.name)
            copied += path.suffix == ".safetensors"
    if not copied or not (staging / "config.json").is_file():
        raise ModelError(
            f"The checkpoint {source} holds no model weights to save.", "Save the model's own weights."
        )
