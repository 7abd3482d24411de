"""What a run produced, and what a folder a user picked holds: a LoRA adapter or a full model.

A LoRA, DPO or prompt-tuning run writes RUN_DIR/adapter/ (a peft folder); a full fine-tuning
run writes RUN_DIR/model/ (a whole Hugging Face model folder) instead. Chat, evaluation and
export ask here which one a run (or a picked folder) has, from its files alone: no torch.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from engine.runs.state import ADAPTER_NAME, CONFIG_NAME, EVENTS_NAME, MODEL_NAME

ADAPTER_CONFIG = "adapter_config.json"
MODEL_CONFIG = "config.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class Output(NamedTuple):
    kind: str  # "adapter" (peft folder) or "model" (a full Hugging Face model folder)
    path: Path


def is_adapter_folder(path: Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file()


def is_model_folder(path: Path) -> bool:
    """config.json beside safetensors weights (a LoRA folder has neither config.json nor full weights)."""
    path = Path(path)
    if not (path / MODEL_CONFIG).is_file() or is_adapter_folder(path):
        return False
    return any(path.glob("*.safetensors")) or (path / "model.safetensors.index.json").is_file()


def is_run_folder(path: Path) -> bool:
    return (Path(path) / EVENTS_NAME).is_file() and (Path(path) / CONFIG_NAME).is_file()


def run_output(run_dir: str | Path) -> Output | None:
    """The final output of a run: its adapter/ or (full fine-tuning) its model/; None before the end."""
    run_dir = Path(run_dir)
    adapter = run_dir / ADAPTER_NAME
    if is_adapter_folder(adapter):
        return Output("adapter", adapter)
    model = run_dir / MODEL_NAME
    if is_model_folder(model):
        return Output("model", model)
    return None


def folder_output(path: str | Path) -> Output | None:
    """What a folder picked as "the run's output" gives: a run folder its final output; an adapter
    folder (a checkpoint too) itself; a run's model/ or a full run's checkpoint itself. None
    otherwise: a model folder outside a run is a base model, picked as the model, not as an output."""
    path = Path(path)
    if is_adapter_folder(path):
        return Output("adapter", path)
    if is_run_folder(path) or (path / ADAPTER_NAME).is_dir():
        found = run_output(path)
        if found is not None:
            return found
    if is_model_folder(path) and owning_run(path)[0] is not None:
        return Output("model", path)
    return None


def owning_run(path: str | Path) -> tuple[Path | None, int | None]:
    """(the run folder `path` belongs to, the checkpoint step) for RUN_DIR, RUN_DIR/adapter,
    RUN_DIR/model or RUN_DIR/checkpoints/checkpoint-N; (None, None) for a folder outside a run."""
    path = Path(path)
    match = _CHECKPOINT.match(path.name)
    if match and path.parent.name == "checkpoints" and is_run_folder(path.parent.parent):
        return path.parent.parent, int(match.group(1))
    if is_run_folder(path):
        return path, None
    if path.name in (ADAPTER_NAME, MODEL_NAME) and is_run_folder(path.parent):
        return path.parent, None
    return None, None
