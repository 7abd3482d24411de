"""Describe a model folder from its files alone: config.json, tokenizer files, safetensors headers.

No tensor is loaded and neither torch nor transformers is imported, so describing a folder
takes milliseconds. Use engine.models.library for the public API (it re-exports these names).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.errors import ModelError
from engine.models.folder import (
    ModelFolder,
    has_chat_template,
    read_checked_header,
    read_safetensors_header,
    weight_files,
)

__all__ = [
    "ModelInfo",
    "describe_model",
    "has_chat_template",
    "read_checked_header",
    "read_safetensors_header",
    "weight_files",
    "weight_stats",
]

NOT_QUANTIZED = ("embed", "wte", "wpe", "lm_head")  # bitsandbytes leaves these in 16-bit
NF4_BYTES_PER_PARAM = (
    0.5 + 1 / 64 + 4 / (64 * 256)
)  # 4-bit values + 8-bit absmax per 64 + fp32 per 256 blocks
BF16_BYTES_PER_PARAM = 2


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    name: str
    source: str  # "demo" | "hf-cache" | "added" | "imported"
    architecture: str | None
    model_type: str | None
    parameters: int | None
    context_length: int | None
    has_chat_template: bool
    memory_4bit_bytes: int | None
    needs_remote_code: bool
    remote_code_allowed: bool
    problem: str | None
    hint: str = ""

    @property
    def usable(self) -> bool:
        return self.problem is None and (not self.needs_remote_code or self.remote_code_allowed)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the path as a string, plus `usable`."""
        return {**asdict(self), "path": str(self.path), "usable": self.usable}


SOURCE_LABELS = {"demo": "demo", "hf-cache": "HF cache", "added": "added", "imported": "imported GGUF"}


def format_count(n: int | None) -> str:
    """135M, 1.2B, 70B, 103K; "?" when unknown."""
    if n is None:
        return "?"
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            value = n / size
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return str(n)


def status_text(info: ModelInfo) -> str:
    """One short status for lists (CLI table, model library dialog)."""
    if info.problem:
        return info.problem
    if info.needs_remote_code:
        return (
            "ready (its own code allowed)"
            if info.remote_code_allowed
            else "needs your consent: runs its own code"
        )
    return "ready"


def describe_model(
    path: str | Path, *, source: str = "added", remote_code_allowed: bool = False
) -> ModelInfo:
    """Describe a model folder; never raises for a bad folder (`problem` and `hint` say what is wrong)."""
    folder = Path(path).expanduser()
    try:
        folder = folder.resolve()
    except (OSError, RuntimeError):  # a symlink loop: describe the path as given
        folder = folder.absolute()
    try:
        return _describe(folder, source, remote_code_allowed)
    except OSError as exc:  # e.g. no permission to list the folder
        return ModelInfo(
            folder,
            hf_repo_id(folder) or folder.name,
            source,
            None,
            None,
            None,
            None,
            False,
            None,
            False,
            remote_code_allowed,
            f"{folder} cannot be read: {exc.strerror or exc}.",
            "Check that your user account can read the folder and its files.",
        )


def check_model_folder(path: Path) -> ModelFolder:
    return ModelFolder.open(path)


def _describe(folder: Path, source: str, remote_code_allowed: bool) -> ModelInfo:
    problem, hint, stats, model = None, "", None, None
    try:
        model = check_model_folder(folder)
        stats = weight_stats(model)
    except ModelError as exc:
        problem, hint = " ".join(exc.message.split()), exc.hint
    if model is None:  # still say what we can of a folder that failed a check
        try:
            model = ModelFolder.read(folder)
        except (ModelError, OSError):
            pass
    return ModelInfo(
        path=folder,
        name=hf_repo_id(folder) or folder.name,
        source=source,
        architecture=model.architecture if model else None,
        model_type=model.model_type if model else None,
        parameters=stats[0] if stats else None,
        context_length=model.context_length if model else None,
        has_chat_template=has_chat_template(folder),
        memory_4bit_bytes=stats[1] if stats else None,
        needs_remote_code=model is not None and model.needs_remote_code,
        remote_code_allowed=remote_code_allowed,
        problem=problem,
        hint=hint,
    )


def hf_repo_id(folder: Path) -> str | None:
    """ "org/name" for a snapshot folder of the HF hub cache (models--org--name/snapshots/<commit>)."""
    repo = folder.parent.parent
    if folder.parent.name == "snapshots" and repo.name.startswith("models--"):
        return "/".join(repo.name.split("--")[1:])
    return None


def weight_stats(folder: Path | ModelFolder) -> tuple[int, int] | None:
    """(parameter count, estimated weight memory in bytes when loaded 4-bit NF4), or None without safetensors.

    The estimate mirrors bitsandbytes with double quantization: every 2-D weight except the
    embeddings and lm_head costs 0.5 byte per value plus its quantization constants (one 8-bit
    absmax per 64 values, one fp32 constant per 256 such blocks); everything else stays bf16
    (2 bytes per value). Activations, LoRA weights and optimizer state come on top.
    """
    model = folder if isinstance(folder, ModelFolder) else ModelFolder(Path(folder), {})
    headers = model.headers()
    if not headers:
        return None
    parameters, memory = 0, 0.0
    for _file, header in headers:
        for name, entry in header.items():
            count = 1
            for dim in entry["shape"]:
                count *= dim
            parameters += count
            quantized = len(entry["shape"]) == 2 and not any(part in name for part in NOT_QUANTIZED)
            memory += count * (NF4_BYTES_PER_PARAM if quantized else BF16_BYTES_PER_PARAM)
    return parameters, int(memory)
