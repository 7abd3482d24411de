"""A local Hugging Face model folder, read from its files alone: config.json once, weight headers.

Every check that can be made without torch lives here, so a wrong or damaged folder fails in
milliseconds with a message that says what to do, wherever a model is loaded or described
(training, chat, export, fit check, data review, the library). Imports neither torch nor
transformers.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from engine.errors import ModelError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "n_ctx")
MAX_HEADER = 100_000_000  # the safetensors format's own limit
DAMAGED = "The model folder looks damaged; copy it again."
# The heads of models that generate text (GPT2LMHeadModel, Gemma3ForConditionalGeneration, ...).
GENERATING_HEADS = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


def read_json_object(file: Path, hint: str = DAMAGED) -> dict[str, Any]:
    """A JSON object from `file`; ModelError naming the file if it is unreadable or not an object."""
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except RecursionError:
        raise ModelError(f"{file} cannot be read: it is nested too deeply.", hint) from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{file} cannot be read: {exc}.", hint) from None
    return data


def read_config(config_file: Path) -> dict[str, Any]:
    return read_json_object(config_file)


@dataclass
class ModelFolder:
    """One model folder. `config` is config.json, parsed once; `open` checks everything but consent."""

    path: Path
    config: dict[str, Any]
    files: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, path: str | Path) -> ModelFolder:
        """Just the folder and its config.json (ModelError if either is missing or unreadable)."""
        path = Path(path).expanduser()
        _check_is_model_dir(path)
        return cls(path, read_config(path / "config.json"), _file_names(path))

    @classmethod
    def open(cls, path: str | Path, allow_pickle_weights: bool = False) -> ModelFolder:
        """Every check except remote-code consent, the weight files' headers included."""
        folder = cls.read(path)
        folder.check_kind()
        folder.check_files(allow_pickle_weights)
        return folder

    def fingerprint(self) -> str:
        """Changes whenever a file of the model changes (name, size, modification time): a cache key.

        Reading every weight byte would take seconds on a large model; size and mtime catch a
        re-download, a conversion or an edit, which is what invalidates cached answers.
        """
        import hashlib

        digest = hashlib.sha256()
        for name in sorted(self.files):
            try:
                stat = (self.path / name).stat()
            except OSError:
                continue
            digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:20]

    # ---- what config.json says

    @property
    def text_config(self) -> dict[str, Any]:
        """The language model's own settings (multimodal configs nest them under text_config)."""
        text = self.config.get("text_config")
        return text if isinstance(text, dict) else {}

    @property
    def model_type(self) -> str | None:
        value = self.config.get("model_type")
        return value if isinstance(value, str) else None

    @property
    def architecture(self) -> str | None:
        architectures = self.config.get("architectures")
        if isinstance(architectures, list) and architectures and isinstance(architectures[0], str):
            return architectures[0]
        return self.model_type

    @property
    def context_length(self) -> int | None:
        for config in (self.config, self.text_config):
            for key in CONTEXT_KEYS:
                value = config.get(key)
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    return value
        return None

    @cached_property
    def needs_remote_code(self) -> bool:
        return needs_remote_code(self.config)

    # ---- files

    @property
    def has_safetensors(self) -> bool:
        return any(n.endswith(".safetensors") for n in self.files)

    @property
    def has_pickle(self) -> bool:
        return any(n.endswith(PICKLE_SUFFIXES) for n in self.files)

    def check_kind(self) -> None:
        """A model that generates text, of a type this transformers knows (ModelError otherwise).

        An encoder (BERT and kin) used to load and then fail inside bitsandbytes with a bare
        AssertionError; an unknown type got transformers' advice to upgrade it from the network.
        """
        from engine.models.types import builtin_model_types, causal_lm_model_types

        if self.needs_remote_code:
            return  # its own code decides what it is (run only with the user's consent)
        kind, heads = self.model_type, self.config.get("architectures")
        heads = [h for h in heads if isinstance(h, str)] if isinstance(heads, list) else []
        generating = "Pick a text-generation model: Llama, Qwen, Mistral, Gemma, Phi and most others."
        if kind and kind not in builtin_model_types():
            raise ModelError(
                f"{self.path} holds a model of type {kind!r}, which the transformers library inside "
                "Whetstone does not know.",
                f"{generating} A newer Whetstone may know this type (models are never downloaded).",
            )
        if (heads and not any(h.endswith(GENERATING_HEADS) for h in heads)) or (
            kind and kind not in causal_lm_model_types()
        ):
            what = heads[0] if heads else f"{kind!r}"
            raise ModelError(
                f"{self.path} holds a {what} model, which is not a causal language model (text in, "
                "text out, one token after another), the kind Whetstone tunes.",
                f"{generating} Their config.json names an architecture ending in ForCausalLM.",
            )

    def check_files(self, allow_pickle_weights: bool = False) -> None:
        path = self.path
        if not self.has_safetensors and not self.has_pickle:
            raise ModelError(
                f"{path} has no weights (*.safetensors).", "Copy the model's weight files into the folder."
            )
        if not self.has_safetensors and not allow_pickle_weights:
            raise ModelError(
                f"{path} has only pickle weights (.bin/.pt), which can run code when loaded.",
                "Convert them to safetensors, or set model.allow_pickle_weights = true "
                "if you trust this folder.",
            )
        if not any(n in self.files for n in TOKENIZER_FILES):
            raise ModelError(
                f"{path} has no tokenizer files.",
                "Copy tokenizer.json / tokenizer_config.json next to the weights.",
            )
        self.headers()  # a damaged weight file is reported here, not as a crash inside the loader

    def weight_files(self) -> list[Path]:
        return weight_files(self.path)

    @cached_property
    def _headers(self) -> list[tuple[Path, dict[str, dict[str, Any]]]]:
        return [(file, read_checked_header(file, self.path)) for file in self.weight_files()]

    def headers(self) -> list[tuple[Path, dict[str, dict[str, Any]]]]:
        """(file, tensor name -> entry) of every safetensors file the model loads, checked."""
        return self._headers

    def has_chat_template(self) -> bool:
        return has_chat_template(self.path)


def _check_is_model_dir(path: Path) -> None:
    if not path.exists():
        raise ModelError(
            f"Model folder {path} does not exist.", "Check the path; models are never downloaded."
        )
    if not path.is_dir():
        if path.suffix.lower() == ".gguf":
            hint = "Convert it into a model folder first: `whetstone-engine models import-gguf FILE`."
        else:
            hint = "Pass the folder that holds config.json."
        raise ModelError(f"{path} is a file, not a model folder.", hint)
    if not (path / "config.json").is_file():
        if (path / "adapter_config.json").is_file():
            raise ModelError(
                f"{path} is a LoRA adapter, not a base model.",
                "Pick the base model folder; the adapter is loaded on top of it.",
            )
        raise ModelError(
            f"{path} is not a Hugging Face model folder: config.json is missing.",
            "Pick the folder that holds config.json and *.safetensors.",
        )


def _file_names(path: Path) -> list[str]:
    return [p.name for p in path.iterdir() if p.is_file()]


def needs_remote_code(config: dict[str, Any]) -> bool:
    """The config asks for its own code (auto_map) and transformers has no built-in class for it."""
    from engine.models.types import builtin_model_types  # reads files; does not import transformers

    return bool(config.get("auto_map")) and config.get("model_type") not in builtin_model_types()


def has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(tokenizer_config, dict) and bool(tokenizer_config.get("chat_template"))


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files the model loads: the index's shards, else model.safetensors, else all.

    Some repos also ship a consolidated copy next to the shards; counting both would double the size.
    """
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(read_json_object(index)["weight_map"].values()))
            if not all(isinstance(name, str) and name and "/" not in name for name in shards):
                raise ValueError("a shard name is not a file name")
        except (ModelError, KeyError, TypeError, AttributeError, ValueError) as exc:
            detail = exc.message if isinstance(exc, ModelError) else f"{index} cannot be read: {exc}."
            raise ModelError(detail, DAMAGED) from None
        missing = [name for name in shards if not (folder / name).is_file()]
        if missing:
            raise ModelError(
                f"{folder} is missing {len(missing)} weight file(s), e.g. {missing[0]}.",
                "Copy the missing files; the download may be incomplete.",
            )
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
        try:
            header = json.loads(handle.read(length))
        except RecursionError:
            raise ValueError("the header is nested too deeply") from None
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    header.pop("__metadata__", None)
    data_size = size - 8 - length
    for name, entry in header.items():
        shape = entry.get("shape") if isinstance(entry, dict) else None
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (
            isinstance(shape, list)
            and all(isinstance(d, int) and d >= 0 for d in shape)
            and isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) for o in offsets)
            and isinstance(entry.get("dtype"), str)
        ):
            raise ValueError(f"tensor {name!r} has an invalid entry")
        if not 0 <= offsets[0] <= offsets[1]:
            raise ValueError(f"tensor {name!r} has invalid data offsets")
        if offsets[1] > data_size:
            raise ValueError("it is truncated (tensor data runs past the end of the file)")
    return header


def read_checked_header(file: Path, folder: Path) -> dict[str, dict[str, Any]]:
    """A weight file's header, or a ModelError that tells the user the file is damaged."""
    try:
        return read_safetensors_header(file)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ModelError(
            f"{file.name} in {folder} is damaged: {exc}.",
            "Copy the file again; it may be an incomplete download.",
        ) from None
