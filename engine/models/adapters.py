"""LoRA adapter folders: found, checked from their files alone, then loaded onto a base model.

An adapter is checked the way a model folder is (engine.models.folder): adapter_config.json
must be readable and sane, the weights must be safetensors (pickle only with the same explicit
consent as a model's), their header intact, their rank the one the config states, and their
shapes must fit the base. Anything wrong is a ModelError naming the folder, before peft runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import ModelError
from engine.models.folder import ModelFolder, read_checked_header, read_json_object

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
PICKLE_NAMES = ("adapter_model.bin", "adapter_model.pt", "adapter_model.pth")
DAMAGED = "The adapter looks damaged: pick another checkpoint, or train it again."


@dataclass(frozen=True)
class AdapterFolder:
    path: Path
    config: dict[str, Any]
    rank: int
    safetensors: bool
    header: dict[str, dict[str, Any]]
    """Tensor name -> entry of the safetensors weights ({} for pickle weights)."""
    kind: str = "lora"
    """"lora", or "prompt_tuning" (a learned soft prompt: no weights to merge; `rank` is 0)."""

    def require_lora(self, use: str) -> None:
        """A ModelError for uses only LoRA weights allow (see `require_lora_folder`)."""
        _refuse_prompt_tuning(self.path, self.kind, use)


def require_lora_folder(path: str | Path, use: str) -> None:
    """A ModelError when the adapter at `path` is a soft prompt: merging and exporting need LoRA
    weights, and the evaluation's scoring reads logits position by position (a soft prompt shifts
    them). Reads adapter_config.json alone; the full checks come with check_adapter."""
    folder = resolve_adapter_dir(path)
    try:
        kind = read_json_object(folder / CONFIG_NAME, DAMAGED).get("peft_type")
    except ModelError:
        return  # check_adapter says what is wrong with it, where it is loaded
    _refuse_prompt_tuning(folder, "prompt_tuning" if kind == "PROMPT_TUNING" else "lora", use)


def _refuse_prompt_tuning(path: Path, kind: str, use: str) -> None:
    if kind != "lora":
        raise ModelError(
            f"{path} is a prompt-tuning adapter (a learned prompt, no weights to merge), "
            f"which {use} does not take yet.",
            "Chat with it in Whetstone, or train with LoRA (method sft) to evaluate and export.",
        )


def resolve_adapter_dir(path: str | Path) -> Path:
    """Accept an adapter folder, a checkpoint folder or a run folder (uses RUN_DIR/adapter)."""
    path = Path(path).expanduser()
    for candidate in (path, path / "adapter"):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    raise ModelError(
        f"{path} holds no LoRA adapter ({CONFIG_NAME} is missing).",
        "Pass a run folder that finished, its adapter/ folder, or a checkpoint folder.",
    )


def check_adapter(
    path: str | Path, base: ModelFolder | None = None, allow_pickle_weights: bool = False
) -> AdapterFolder:
    """Every check that can be made without torch; `base` adds the check that the shapes fit it."""
    folder = resolve_adapter_dir(path)
    config = read_json_object(folder / CONFIG_NAME, DAMAGED)
    if config.get("peft_type") == "PROMPT_TUNING":
        return _check_prompt_tuning(folder, config, base)
    rank = _check_config(folder, config)
    weights = folder / WEIGHTS_NAME
    if weights.is_file():
        header = read_checked_header(weights, folder)
        _check_ranks(folder, header, rank, config)
        adapter = AdapterFolder(folder, config, rank, True, header)
        if base is not None:
            _check_fits(adapter, base)
        return adapter
    pickles = [name for name in PICKLE_NAMES if (folder / name).is_file()]
    if not pickles:
        raise ModelError(f"{folder} has no adapter weights ({WEIGHTS_NAME} is missing).", DAMAGED)
    if not allow_pickle_weights:
        raise ModelError(
            f"{folder} has only pickle weights ({pickles[0]}), which can run code when loaded.",
            "Convert them to safetensors, or set model.allow_pickle_weights = true "
            "if you trust this adapter.",
        )
    return AdapterFolder(folder, config, rank, False, {})


def _check_prompt_tuning(folder: Path, config: dict[str, Any], base: ModelFolder | None) -> AdapterFolder:
    """A soft prompt (training.method prompt_tuning): its embeddings must fit the base's width."""
    tokens = config.get("num_virtual_tokens")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ModelError(
            f"{folder / CONFIG_NAME}: num_virtual_tokens = {tokens!r} is not a positive number.", DAMAGED
        )
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise ModelError(f"{folder} has no adapter weights ({WEIGHTS_NAME} is missing).", DAMAGED)
    header = read_checked_header(weights, folder)
    prompt = header.get("prompt_embeddings")
    if prompt is None or len(prompt["shape"]) != 2:
        raise ModelError(f"{weights} holds no prompt embeddings.", DAMAGED)
    width = (base.text_config or base.config).get("hidden_size") if base is not None else None
    if isinstance(width, int) and prompt["shape"][1] != width:
        raise ModelError(
            f"The prompt-tuning adapter in {folder} was trained on another model: its prompt is "
            f"{prompt['shape'][1]} wide where {base.path} has {width}.",
            "Pick the base model the adapter was trained on.",
        )
    return AdapterFolder(folder, config, 0, True, header, kind="prompt_tuning")


def _check_config(folder: Path, config: dict[str, Any]) -> int:
    def bad(what: str) -> ModelError:
        return ModelError(f"{folder / CONFIG_NAME} is not a usable LoRA config: {what}.", DAMAGED)

    kind = config.get("peft_type", "LORA")
    if kind != "LORA":
        raise ModelError(
            f"{folder} is a {kind!r} adapter; Whetstone loads LoRA and prompt-tuning adapters only.",
            "Pick an adapter trained with LoRA or QLoRA.",
        )
    rank = config.get("r")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise bad(f"r = {rank!r} is not a positive whole number")
    alpha = config.get("lora_alpha", rank)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or alpha <= 0:
        raise bad(f"lora_alpha = {alpha!r} is not a positive number")
    targets = config.get("target_modules")
    if (
        targets is not None
        and not isinstance(targets, str)
        and not (isinstance(targets, list) and all(isinstance(t, str) for t in targets))
    ):
        raise bad("target_modules is neither a name nor a list of names")
    for key in ("rank_pattern", "alpha_pattern"):
        if not isinstance(config.get(key) or {}, dict):
            raise bad(f"{key} is not a table")
    return rank


def _lora_tensors(header: dict[str, dict[str, Any]]):
    """(module name as in the base, "A" or "B", shape) of every LoRA matrix in the adapter."""
    for name, entry in header.items():
        for part in ("A", "B"):
            marker = f".lora_{part}."
            if marker in name and len(entry["shape"]) == 2:
                module = name.split(marker)[0].removeprefix("base_model.model.")
                yield module, part, entry["shape"]


def _check_ranks(folder: Path, header: dict[str, dict[str, Any]], rank: int, config: dict[str, Any]) -> None:
    allowed = {rank, *(v for v in (config.get("rank_pattern") or {}).values() if isinstance(v, int))}
    found = 0
    for module, part, shape in _lora_tensors(header):
        found += 1
        tensor_rank = shape[0] if part == "A" else shape[1]
        if tensor_rank not in allowed:
            raise ModelError(
                f"The adapter in {folder} does not match its config: {CONFIG_NAME} says rank {rank}, "
                f"but the weights of {module} have rank {tensor_rank}.",
                DAMAGED,
            )
    if not found:
        raise ModelError(f"{folder / WEIGHTS_NAME} holds no LoRA weights.", DAMAGED)


def _check_fits(adapter: AdapterFolder, base: ModelFolder) -> None:
    """Each LoRA matrix must match the in/out size of the base layer it adapts."""
    shapes = {
        name.removesuffix(".weight"): entry
        for _file, header in base.headers()
        for name, entry in header.items()
        if name.endswith(".weight")
    }
    for module, part, shape in _lora_tensors(adapter.header):
        entry = shapes.get(module)
        if entry is None:
            raise ModelError(
                f"The adapter in {adapter.path} was trained on another model: "
                f"{base.path} has no layer {module}.",
                "Pick the base model the adapter was trained on.",
            )
        base_shape = entry["shape"]
        if len(base_shape) != 2 or entry.get("dtype") in ("U8", "I8"):
            continue  # packed (pre-quantized) weights: their stored shape is not the layer's
        size = base_shape[1] if part == "A" else base_shape[0]
        got = shape[1] if part == "A" else shape[0]
        if got != size:
            raise ModelError(
                f"The adapter in {adapter.path} was trained on another model: its {module} is "
                f"{got} wide where {base.path} has {size}.",
                "Pick the base model the adapter was trained on.",
            )


def check_finite(adapter: AdapterFolder) -> None:
    """A ModelError when the adapter's weights hold NaN or infinity (a run that diverged wrote them,
    before the engine stopped such runs): every answer of the model would be garbage."""
    if not adapter.safetensors:
        return
    import torch
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(adapter.path / WEIGHTS_NAME), framework="pt") as weights:
            for name in weights.keys():  # noqa: SIM118 (safe_open is not a dict)
                tensor = weights.get_tensor(name)
                if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                    raise ModelError(
                        f"The adapter in {adapter.path} holds weights that are not numbers (NaN or "
                        f"infinite, first in {name}): the run that wrote it diverged.",
                        "Pick an earlier checkpoint of that run, or train again with a lower learning rate.",
                    )
    except (OSError, SafetensorError) as exc:
        raise ModelError(f"{WEIGHTS_NAME} in {adapter.path} cannot be read: {exc}.", DAMAGED) from None


def load_adapter(model, adapter: AdapterFolder, adapter_name: str = "default", trainable: bool = False):
    """The base with the adapter applied (peft), or a ModelError naming the adapter folder.

    On a model that already carries adapters, this one is added beside them under `adapter_name`.
    `trainable`: its weights train on (a run that starts from an earlier adapter).
    """
    import torch
    from peft import PeftModel
    from safetensors import SafetensorError

    check_finite(adapter)  # before peft touches the model: nothing half-added on a refusal
    try:
        # peft picks adapter_model.safetensors whenever it exists; pickle is reached only with consent.
        if isinstance(model, PeftModel):
            model.load_adapter(str(adapter.path), adapter_name=adapter_name, is_trainable=trainable)
            return model
        return PeftModel.from_pretrained(
            model, str(adapter.path), adapter_name=adapter_name, is_trainable=trainable
        )
    except torch.OutOfMemoryError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
        detail = " ".join(str(exc).split())[:300]
        raise ModelError(
            f"The adapter in {adapter.path} cannot be loaded onto this base model: {detail}",
            "Pick the base model the adapter was trained on, or another checkpoint.",
        ) from None
