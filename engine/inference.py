"""Chat generation as a generator of text chunks, cancellable between tokens."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.config import ModelConfig, QuantizationConfig
from engine.errors import ModelError
from engine.models import end_of_turn_ids, load_model, load_tokenizer


@dataclass
class GenerationSettings:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    seed: int | None = None


def resolve_adapter_dir(path: str | Path) -> Path:
    """Accept an adapter folder, a checkpoint folder or a run folder (uses RUN_DIR/adapter)."""
    path = Path(path).expanduser()
    for candidate in (path, path / "adapter"):
        if (candidate / "adapter_config.json").is_file():
            return candidate
    raise ModelError(f"{path} holds no LoRA adapter (adapter_config.json is missing).",
                     "Pass a run folder that finished, its adapter/ folder, or a checkpoint folder.")


def load_for_chat(model_path: str, adapter: str | None = None, quant: QuantizationConfig | None = None,
                  model_cfg: ModelConfig | None = None):
    """Load the 4-bit base (and adapter) for generation; returns (model, tokenizer)."""
    model_cfg = model_cfg or ModelConfig(path=model_path)
    tokenizer = load_tokenizer(model_cfg)
    adapter_dir = resolve_adapter_dir(adapter) if adapter else None
    model = load_model(model_cfg, quant or QuantizationConfig())
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    return model, tokenizer


def stream_chat(model, tokenizer, messages: list[dict[str, str]], settings: GenerationSettings | None = None,
                cancel: threading.Event | None = None) -> Iterator[str]:
    """Yield the reply in chunks as tokens are generated; setting `cancel` stops between tokens."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    settings = settings or GenerationSettings()
    cancel = cancel or threading.Event()
    if tokenizer.chat_template:
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        prompt = "\n".join(m["content"] for m in messages)
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)

    class _Cancelled(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return cancel.is_set()

    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    sample = settings.temperature > 0
    kwargs = dict(
        **inputs,
        max_new_tokens=settings.max_new_tokens,
        do_sample=sample,
        repetition_penalty=settings.repetition_penalty,
        eos_token_id=end_of_turn_ids(tokenizer, model),
        pad_token_id=tokenizer.pad_token_id,
        stopping_criteria=StoppingCriteriaList([_Cancelled()]),
        streamer=streamer,
    )
    if sample:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k or None)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            if settings.seed is not None:
                torch.manual_seed(settings.seed)
            with torch.no_grad():
                model.generate(**kwargs)
        except BaseException as exc:  # surfaced in the consumer's thread below
            errors.append(exc)
            streamer.end()

    thread = threading.Thread(target=run, name="whetstone-generate", daemon=True)
    thread.start()
    try:
        for chunk in streamer:
            if chunk:
                yield chunk
    finally:
        if thread.is_alive():  # the consumer stopped reading: stop generating too
            cancel.set()
        thread.join()
    if errors:
        raise errors[0]


def generate_text(model, tokenizer, prompt: str, settings: GenerationSettings | None = None) -> str:
    return "".join(stream_chat(model, tokenizer, [{"role": "user", "content": prompt}], settings))
