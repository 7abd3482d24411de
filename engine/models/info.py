"""Describe a model folder from its files alone: config.json, tokenizer files, safetensors headers.

No tensor is loaded and neither torch nor transformers is imported, so describing a folder
takes milliseconds. Use engine.models.library for the public API (it re-exports these names).
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.errors import ModelError
from engine.models.loading import check_model_folder, needs_remote_code

CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "n_ctx")
NOT_QUANTIZED = ("embed", "wte", "wpe", "lm_head")  # bitsandbytes leaves these in 16-bit
NF4_BYTES_PER_PARAM = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4-bit values + 8-bit absmax per 64 + fp32 per 256 blocks
BF16_BYTES_PER_PARAM = 2
MAX_HEADER = 100_000_000  # the safetensors format's own limit


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


def format_gib(n: int | None) -> str:
    if n is None:
        return "?"
    gib = n / 2**30
    if gib < 0.01:
        return f"{n / 2**20:.1f} MiB"
    return f"{gib:.2f} GiB" if gib < 1 else f"{gib:.1f} GiB"


def status_text(info: ModelInfo) -> str:
    """One short status for lists (CLI table, model library dialog)."""
    if info.problem:
        return info.problem
    if info.needs_remote_code:
        return "ready (its own code allowed)" if info.remote_code_allowed else "needs your consent: runs its own code"
    return "ready"


def describe_model(path: str | Path, *, source: str = "added", remote_code_allowed: bool = False) -> ModelInfo:
    """Describe a model folder; never raises for a bad folder (`problem` and `hint` say what is wrong)."""
    folder = Path(path).expanduser()
    try:
        folder = folder.resolve()
    except (OSError, RuntimeError):  # a symlink loop: describe the path as given
        folder = folder.absolute()
    try:
        return _describe(folder, source, remote_code_allowed)
    except OSError as exc:  # e.g. no permission to list the folder
        return ModelInfo(folder, hf_repo_id(folder) or folder.name, source, None, None, None, None, False, None,
                         False, remote_code_allowed, f"{folder} cannot be read: {exc.strerror or exc}.",
                         "Check that your user account can read the folder and its files.")


def _describe(folder: Path, source: str, remote_code_allowed: bool) -> ModelInfo:
    config = _read_config_quietly(folder)
    problem, hint, stats = None, "", None
    try:
        check_model_folder(folder)
        stats = weight_stats(folder)
    except ModelError as exc:
        problem, hint = " ".join(exc.message.split()), exc.hint
    text_config = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    architectures = config.get("architectures")
    model_type = config.get("model_type") if isinstance(config.get("model_type"), str) else None
    return ModelInfo(
        path=folder,
        name=hf_repo_id(folder) or folder.name,
        source=source,
        architecture=architectures[0] if isinstance(architectures, list) and architectures else model_type,
        model_type=model_type,
        parameters=stats[0] if stats else None,
        context_length=_context_length(config) or _context_length(text_config),
        has_chat_template=has_chat_template(folder),
        memory_4bit_bytes=stats[1] if stats else None,
        needs_remote_code=bool(config) and needs_remote_code(config),
        remote_code_allowed=remote_code_allowed,
        problem=problem,
        hint=hint,
    )


def hf_repo_id(folder: Path) -> str | None:
    """"org/name" for a snapshot folder of the HF hub cache (models--org--name/snapshots/<commit>)."""
    repo = folder.parent.parent
    if folder.parent.name == "snapshots" and repo.name.startswith("models--"):
        return "/".join(repo.name.split("--")[1:])
    return None


def _read_config_quietly(folder: Path) -> dict[str, Any]:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _context_length(config: dict[str, Any]) -> int | None:
    for key in CONTEXT_KEYS:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(tokenizer_config, dict) and bool(tokenizer_config.get("chat_template"))


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files the model loads: the index's shards, else model.safetensors, else all.

    Some repos also ship a consolidated copy next to the shards; counting both would double the size.
    """
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"{index} cannot be read: {exc}.", "The model folder looks damaged; copy it again.") from None
        missing = [name for name in shards if not (folder / name).is_file()]
        if missing:
            raise ModelError(f"{folder} is missing {len(missing)} weight file(s), e.g. {missing[0]}.",
                             "Copy the missing files; the download may be incomplete.")
        return [folder / name for name in shards]
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    return sorted(folder.glob("*.safetensors"))


def read_safetensors_header(file: Path) -> dict[str, dict[str, Any]]:
    """Tensor name -> {dtype, shape, data_offsets}; ValueError if the header is damaged or truncated."""
    size = file.stat().st_size
    with open(file, "rb") as handle:
        raw = handle.read(8)
        if len(raw) < 8:
            raise ValueError("the file is shorter than its 8-byte header length")
        (length,) = struct.unpack("<Q", raw)
        if length > min(MAX_HEADER, size - 8):
            raise ValueError("the header length points past the end of the file")
        header = json.loads(handle.read(length))
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    header.pop("__metadata__", None)
    data_size = size - 8 - length
    for name, entry in header.items():
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)
                and isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise ValueError(f"tensor {name!r} has an invalid entry")
        if offsets[1] > data_size:
            raise ValueError("it is truncated (tensor data runs past the end of the file)")
    return header


def read_checked_header(file: Path, folder: Path) -> dict[str, dict[str, Any]]:
    """A weight file's header, or a ModelError that tells the user the file is damaged."""
    try:
        return read_safetensors_header(file)
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelError(f"{file.name} in {folder} is damaged: {exc}.",
                         "Copy the file again; it may be an incomplete download.") from None


def weight_stats(folder: Path) -> tuple[int, int] | None:
    """(parameter count, estimated weight memory in bytes when loaded 4-bit NF4), or None without safetensors.

    The estimate mirrors bitsandbytes with double quantization: every 2-D weight except the
    embeddings and lm_head costs 0.5 byte per value plus its quantization constants (one 8-bit
    absmax per 64 values, one fp32 constant per 256 such blocks); everything else stays bf16
    (2 bytes per value). Activations, LoRA weights and optimizer state come on top.
    """
    files = weight_files(folder)
    if not files:
        return None
    parameters, memory = 0, 0.0
    for file in files:
        for name, entry in read_checked_header(file, folder).items():
            count = 1
            for dim in entry["shape"]:
                count *= dim
            parameters += count
            quantized = len(entry["shape"]) == 2 and not any(part in name for part in NOT_QUANTIZED)
            memory += count * (NF4_BYTES_PER_PARAM if quantized else BF16_BYTES_PER_PARAM)
    return parameters, int(memory)
