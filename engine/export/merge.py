"""Merging a LoRA adapter into its base model: a plain 16-bit Hugging Face folder.

A full fine-tuning run has no adapter: its RUN_DIR/model is exported the same way with no merge
step (loaded in 16 bits, written again with every end-of-turn token in its generation config).

The base is loaded dequantized (bf16 on CUDA, fp32 on CPU) — merging into 4-bit weights
would round the LoRA delta away. The folder is written into a staging folder next to the
target and moved into place at the end, so a kill or a cancel never leaves a folder that
looks like a finished export.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from engine.config import ModelConfig, QuantizationConfig, RunConfig, load_config
from engine.errors import ConfigError, ModelError
from engine.runs import checkpoints
from engine.runs.output import folder_output, owning_run
from engine.util.disk import check_free_space
from engine.util.files import discard_temp_dir, make_temp_dir, prepare_output_folder, replace_dir

Progress = Callable[[float, str], None]
Cancel = Callable[[], bool]

_DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "BF16": 2,
    "F16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}


@dataclass(frozen=True)
class ExportSource:
    base_model: Path  # the run's base (a full model whose base is gone: the full model itself)
    adapter_dir: Path  # the adapter folder, or the full model folder (kind "model")
    run_dir: Path | None
    config: RunConfig | None
    kind: str = "adapter"  # "adapter" (merged into the base) or "model" (a full fine-tuning output)

    @property
    def full(self) -> bool:
        return self.kind == "model"

    def model_config(self) -> ModelConfig:
        """The ModelConfig of what loads as the model: the base, or the full fine-tuned model."""
        cfg = self.config.model if self.config else ModelConfig()
        return replace(cfg, path=str(self.adapter_dir if self.full else self.base_model))


def resolve_export_source(path: str | Path) -> ExportSource:
    """A run folder, an adapter folder or a checkpoint folder -> base model + adapter (+ run);
    a full fine-tuning run (or its model/ folder) -> its model."""
    path = Path(path).expanduser().resolve()
    if not path.is_dir():
        raise ModelError(
            f"{path} is a file, not a folder." if path.exists() else f"{path} does not exist.",
            "Pass a run folder, its adapter/ folder, or a checkpoint folder.",
        )
    full = _full_model_source(path)
    if full is not None:
        return full
    run_dir = None
    if (path / "config.toml").is_file() and not (path / "adapter_config.json").is_file():
        run_dir = path
        adapter = path / "adapter"
        if not (adapter / "adapter_config.json").is_file():
            # A stopped run has no final adapter; its last complete checkpoint is the best it has.
            adapter = checkpoints.latest_complete(path)
            if adapter is None or not (adapter / "adapter_config.json").is_file():
                raise ModelError(
                    f"The run {path} has no adapter and no complete checkpoint yet.",
                    "Let it train until a checkpoint is saved, or resume it first.",
                )
    elif (path / "adapter_config.json").is_file():
        adapter = path
        if path.parent.name == checkpoints.checkpoints_dir(Path()).name:
            if not checkpoints.is_complete(path):
                raise ModelError(
                    f"The checkpoint {path} is incomplete (its save was interrupted).",
                    "Pick a complete checkpoint, or the run folder.",
                )
            run_dir = path.parent.parent
        elif (path.parent / "config.toml").is_file():
            run_dir = path.parent
        if run_dir is not None and not (run_dir / "config.toml").is_file():
            run_dir = None
    else:
        raise ModelError(
            f"{path} is not a run, adapter or checkpoint folder (no adapter_config.json or config.toml).",
            "Pass a run folder, its adapter/ folder, or a checkpoint folder.",
        )

    from engine.models.adapters import require_lora_folder

    require_lora_folder(adapter, "export")  # a soft prompt is refused before any loading
    config = load_config(run_dir / "config.toml") if run_dir else None
    base = config.model.path if config and config.model.path else _adapter_base(adapter)
    base_path = Path(base).expanduser()
    if not base_path.is_dir():
        raise ModelError(
            f"The base model {base} of {path} is not a local folder.",
            "Models are never downloaded: copy the base model folder back to that place.",
        )
    return ExportSource(base_path.resolve(), adapter, run_dir, config)


def _full_model_source(path: Path) -> ExportSource | None:
    """A full fine-tuning run's model (its run folder, RUN_DIR/model or a checkpoint), else None.
    A stopped full run exports its last complete checkpoint. A model folder outside a run is no
    run's output (a base model has nothing to export)."""
    run_dir, _step = owning_run(path)
    if run_dir is None:
        return None
    found = folder_output(path)
    if found is None and run_dir == path and (latest := checkpoints.latest_complete(path)) is not None:
        found = folder_output(latest)
    if found is None or found.kind != "model":
        return None
    if found.path.parent.name == "checkpoints" and not checkpoints.is_complete(found.path):
        raise ModelError(
            f"The checkpoint {found.path} is incomplete (its save was interrupted).",
            "Pick a complete checkpoint, or the run folder.",
        )
    config = load_config(run_dir / "config.toml")
    base = Path(config.model.path).expanduser() if config.model.path else None
    base = base.resolve() if base is not None and base.is_dir() else found.path
    return ExportSource(base, found.path, run_dir, config, kind="model")


def _adapter_base(adapter: Path) -> str:
    try:
        base = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8")).get(
            "base_model_name_or_path"
        )
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelError(
            f"{adapter / 'adapter_config.json'} cannot be read: {exc}.", "The adapter looks damaged."
        ) from None
    if not base:
        raise ModelError(
            f"{adapter} does not name its base model.", "Export the run folder, whose config names it."
        )
    return str(base)


def load_reference(source: ExportSource, device: str | None = None):
    """Base in 16-bit (fp32 on CPU) + the adapter applied by peft, not merged: (model, tokenizer).
    A full model: itself in 16-bit (fp32 on CPU)."""
    from engine.models.adapters import check_adapter, load_adapter
    from engine.models.loading import inspect_model_folder, load_model, load_tokenizer

    cfg = source.model_config()
    if source.full:
        tokenizer = load_tokenizer(cfg)
        model = load_model(cfg, QuantizationConfig(load_in_4bit=False, compute_dtype="auto"), device)
        model.eval()
        return model, tokenizer
    adapter = check_adapter(source.adapter_dir, inspect_model_folder(cfg), cfg.allow_pickle_weights)
    tokenizer = load_tokenizer(cfg)
    base = load_model(cfg, QuantizationConfig(load_in_4bit=False, compute_dtype="auto"), device)
    model = load_adapter(base, adapter)
    model.eval()
    return model, tokenizer


def estimate_merged_bytes(base_model: Path, bytes_per_param: int) -> int:
    """Size of the merged safetensors: parameter count from the headers x the output dtype."""
    total = 0
    for file in sorted(Path(base_model).glob("*.safetensors")):
        try:
            with open(file, "rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                header = json.loads(handle.read(length))
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                count = 1
                for dim in info["shape"]:
                    count *= dim
                total += count * (
                    bytes_per_param
                    if info["dtype"] in ("F32", "F16", "BF16", "F64")
                    else _DTYPE_BYTES.get(info["dtype"], 4)
                )
        except (OSError, ValueError, KeyError, struct.error):
            total += file.stat().st_size * 2  # unreadable header: assume 16-bit source widened to fp32
    return total + 32 * 1024 * 1024  # tokenizer, configs, and safetensors headers


def check_output_dir(out_dir: Path) -> None:
    """A new or empty folder for a merged model, whose parent can take it (UserError otherwise)."""
    if os.path.lexists(out_dir) and (not out_dir.is_dir() or out_dir.is_symlink() or any(out_dir.iterdir())):
        raise ConfigError(
            f"Output {out_dir} already exists and is not empty.",
            "Choose a new folder; an export never overwrites files.",
        )
    prepare_output_folder(out_dir.parent, "the merged model")


def merged_bytes(source: ExportSource) -> int:
    """About how much disk the merged folder takes (in the dtype the merge runs in here)."""
    from engine.models.loading import pick_device, resolve_compute_dtype

    itemsize = resolve_compute_dtype("auto", pick_device()).itemsize
    return estimate_merged_bytes(Path(source.model_config().path), itemsize)


def merge_adapter(
    source: ExportSource,
    out_dir: str | Path,
    *,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> Path:
    """Write base + adapter merged as a 16-bit Hugging Face folder at `out_dir`; return it."""
    out_dir = Path(out_dir).expanduser().resolve()
    check_output_dir(out_dir)
    check_free_space(out_dir.parent, merged_bytes(source), "the merged model")
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    make_temp_dir(staging)  # a leftover of a killed export is removed; anything else is refused
    try:
        write_merged(source, staging, progress=progress, cancel=cancel)
        _step(progress, cancel, 0.97, "Finishing")
        replace_dir(staging, out_dir)
    except BaseException:
        discard_temp_dir(staging)
        raise
    if progress is not None:
        progress(1.0, f"Merged model written to {out_dir}")
    return out_dir


def write_merged(
    source: ExportSource, folder: Path, *, progress: Progress | None = None, cancel: Cancel | None = None
) -> None:
    """Write the merged weights, tokenizer and chat template into the existing folder `folder`."""
    from engine.models.loading import pick_device, resolve_compute_dtype

    device = pick_device()
    dtype = resolve_compute_dtype("auto", device)
    name = Path(source.model_config().path).name
    _step(progress, cancel, 0.0, f"Loading {name} in {str(dtype).replace('torch.', '')}")
    model, tokenizer = load_reference(source, device)
    if source.full:  # a full fine-tuning run's model: nothing to merge
        merged = model
    else:
        _step(progress, cancel, 0.4, "Merging the adapter into the weights")
        merged = model.merge_and_unload()
    _set_generation_config(merged, tokenizer)
    _step(progress, cancel, 0.5, "Writing safetensors")
    merged.save_pretrained(str(folder))
    del model, merged
    _step(progress, cancel, 0.9, "Writing the tokenizer and chat template")
    _save_tokenizer(source, tokenizer, folder)


def _step(progress: Progress | None, cancel: Cancel | None, fraction: float, message: str) -> None:
    from engine.errors import Cancelled

    if cancel is not None and cancel():
        raise Cancelled()
    if progress is not None:
        progress(fraction, message)


def _set_generation_config(model, tokenizer) -> None:
    from engine.models.loading import end_of_turn_ids

    # Llama-3-style models end a turn with a token that is not eos: list every one, or chat never stops.
    gen = model.generation_config
    gen.eos_token_id = end_of_turn_ids(tokenizer, model)
    if gen.pad_token_id is None and tokenizer.pad_token_id is not None:
        gen.pad_token_id = tokenizer.pad_token_id


def _save_tokenizer(source: ExportSource, loaded, staging: Path) -> None:
    """The base's tokenizer files as they are (chat template included), not our pad-patched copy."""
    from transformers import AutoTokenizer

    from engine.models.loading import inspect_model_folder, trust_remote_code

    folder = inspect_model_folder(source.model_config())  # consent from this workspace's library only
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(folder.path), trust_remote_code=trust_remote_code(folder), local_files_only=True
        )
    except Exception:  # the engine already loaded it once; fall back to that copy
        tokenizer = loaded
    if not tokenizer.chat_template and loaded.chat_template:
        tokenizer.chat_template = loaded.chat_template
    tokenizer.save_pretrained(str(staging))
