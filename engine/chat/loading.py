"""Loading a base model (+ adapter) for chat, and the simple streaming forms the CLI uses.

The streaming machinery (stats, stop strings, cancel) lives in `engine.chat.replies`; the
settings in `engine.chat.settings`. Every chat load goes through `check_for_chat` (files
only, milliseconds) and `load_for_chat`: the CLI, the chat server and the demo alike.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from engine.chat.replies import ReplyStream, start_reply
from engine.chat.settings import MAX_SEED, GenerationSettings
from engine.config import ModelConfig, QuantizationConfig
from engine.models.adapters import AdapterFolder, check_adapter, load_adapter, resolve_adapter_dir
from engine.models.folder import ModelFolder
from engine.models.loading import inspect_model_folder, load_model, load_tokenizer
from engine.runs.output import folder_output

__all__ = [
    "MAX_SEED",
    "GenerationSettings",
    "ReplyStream",
    "check_for_chat",
    "full_model_config",
    "generate_text",
    "load_for_chat",
    "resolve_adapter_dir",
    "start_reply",
    "stream_chat",
]


def check_for_chat(
    model_cfg: ModelConfig, adapter: str | Path | None = None
) -> tuple[ModelFolder, AdapterFolder | ModelFolder | None]:
    """Every check of the base and the adapter that needs no torch; ModelError naming what is wrong.

    `adapter` may name a full fine-tuning run (or its model/ folder): that model then replaces the
    base, and is returned in both places (what loads, and what the run added).
    """
    full = full_model_config(model_cfg, adapter)
    if full is not None:
        folder = inspect_model_folder(full)
        return folder, folder
    folder = inspect_model_folder(model_cfg)
    checked = check_adapter(adapter, folder, model_cfg.allow_pickle_weights) if adapter else None
    return folder, checked


def full_model_config(model_cfg: ModelConfig, adapter: str | Path | None) -> ModelConfig | None:
    """The ModelConfig of the full model `adapter` names (a full run's RUN_DIR/model), else None."""
    found = folder_output(Path(adapter).expanduser()) if adapter else None
    if found is None or found.kind != "model":
        return None
    return replace(model_cfg, path=str(found.path.resolve()))


def load_for_chat(
    model_path: str,
    adapter: str | None = None,
    quant: QuantizationConfig | None = None,
    model_cfg: ModelConfig | None = None,
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
):
    """Load the 4-bit base (and adapter), or a full run's model, for generation: (model, tokenizer)."""
    report = progress or (lambda _message: None)
    model_cfg = model_cfg or ModelConfig(path=model_path)
    _folder, checked = check_for_chat(model_cfg, adapter)
    if isinstance(checked, ModelFolder):  # a full fine-tuning run's model loads in the base's place
        model_cfg, checked = full_model_config(model_cfg, adapter), None
    report("Loading the tokenizer…")
    tokenizer = load_tokenizer(model_cfg)
    report(f"Loading the model in 4 bits on {device.upper()}…" if device else "Loading the model in 4 bits…")
    model = load_model(model_cfg, quant or QuantizationConfig(), device=device)
    if checked is not None:
        report("Loading the adapter…")
        model = load_adapter(model, checked)
    model.eval()
    return model, tokenizer


def stream_chat(
    model,
    tokenizer,
    messages: list[dict[str, str]],
    settings: GenerationSettings | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[str]:
    """Yield the reply in chunks as tokens are generated; setting `cancel` stops between tokens."""
    yield from start_reply(model, tokenizer, messages, settings, cancel)


def generate_text(model, tokenizer, prompt: str, settings: GenerationSettings | None = None) -> str:
    """The whole reply to one user prompt, as a string."""
    return "".join(stream_chat(model, tokenizer, [{"role": "user", "content": prompt}], settings))
