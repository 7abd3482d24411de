"""Wrapping a (4-bit) base model with LoRA adapters through peft."""

from __future__ import annotations

from engine.config import LoraConfig


def add_lora(model, cfg: LoraConfig, gradient_checkpointing: bool, seed: int):
    """Prepare a k-bit base for training and add trainable LoRA adapters; returns a PeftModel."""
    import torch
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model, prepare_model_for_kbit_training

    if getattr(model, "is_loaded_in_4bit", False):
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            # Non-reentrant checkpointing works with frozen 4-bit inputs and peft's hooks.
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    # Training never needs a KV cache, and a cache disables transformers' packed-sequence masks.
    model.config.use_cache = False

    targets = cfg.target_modules
    peft_config = PeftLoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules="all-linear" if targets == ["all-linear"] else list(targets),
        use_rslora=cfg.use_rslora,
        use_dora=cfg.use_dora,
        bias="none",
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(seed)  # adapter initialisation is part of the run's reproducibility
    try:
        return get_peft_model(model, peft_config)
    except ValueError as exc:
        from engine.errors import ConfigError

        raise ConfigError(f"lora.target_modules = {targets!r} does not fit this model: {exc}") from None
