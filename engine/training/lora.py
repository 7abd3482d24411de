"""Wrapping a (4-bit) base model with trainable peft adapters: LoRA (fresh or an earlier one's), or
a soft prompt (prompt tuning)."""

from __future__ import annotations

from engine.config import LoraConfig


def prepare_base(model, gradient_checkpointing: bool):
    """Ready a (k-bit) base for training an adapter on it."""
    from peft import prepare_model_for_kbit_training

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
    return model


def add_lora(model, cfg: LoraConfig, gradient_checkpointing: bool, seed: int, init_adapter: str = ""):
    """Prepare a k-bit base for training and add trainable LoRA adapters; returns a PeftModel.

    `init_adapter` (a run or adapter folder): train that adapter on instead of a fresh one; the run's
    lora settings then do not apply (the adapter keeps its own rank and targets).
    """
    import torch
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    model = prepare_base(model, gradient_checkpointing)
    if init_adapter:
        from engine.models.adapters import check_adapter, load_adapter

        return load_adapter(model, check_adapter(init_adapter), trainable=True)
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


def add_prompt_tuning(model, tokens: int, gradient_checkpointing: bool, seed: int):
    """Prepare the base and add `tokens` trainable virtual prompt tokens (peft prompt tuning)."""
    import torch
    from peft import PromptTuningConfig, get_peft_model

    model = prepare_base(model, gradient_checkpointing)
    torch.manual_seed(seed)
    return get_peft_model(model, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=tokens))
