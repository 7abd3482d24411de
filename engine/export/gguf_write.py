"""Write a Hugging Face model folder as a GGUF file for llama.cpp / Ollama, with no llama.cpp build.

The layout follows llama.cpp's convert_hf_to_gguf.py: same metadata keys, tensor names (from
gguf.TensorNameMap), Llama q/k permutation for its rotary layout, 1-D tensors kept in f32.
Tensors are streamed: the header is written from the safetensors headers, then one tensor at a
time is read, converted and appended, so memory stays at about one tensor. The file is written
under a temp name in the target folder and moved into place only when complete.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import Cancelled, ModelError
from engine.export.gguf_quant import (
    QUANT_TYPES,
    ModelShape,
    check_quant,
    file_types,
    imatrix_for,
    tensor_type,
)
from engine.models.folder import ModelFolder, read_safetensors_header, weight_files
from engine.util.files import fsync_dir, move_new

__all__ = ["QUANT_TYPES", "estimate_gguf_bytes", "quant_of_file_type", "round_like_gguf", "write_gguf"]

# HF architecture -> (GGUF architecture, permute q/k). Mistral is the llama architecture in GGUF.
_ARCHS = {
    "LlamaForCausalLM": ("llama", True),
    "MistralForCausalLM": ("llama", True),
    "Qwen2ForCausalLM": ("qwen2", False),
    "Qwen3ForCausalLM": ("qwen3", False),
}
_SKIP_SUFFIXES = ("rotary_emb.inv_freq",)  # buffers some old checkpoints saved

Progress = Callable[[float, str], None]


def supported_architectures() -> tuple[str, ...]:
    return tuple(_ARCHS)


@dataclass
class _Tensor:
    hf_name: str
    file: Path
    name: str  # GGUF name
    shape: tuple[int, ...]  # numpy order (rows, cols)
    qtype: Any  # gguf.GGMLQuantizationType
    permute_heads: int | None = None  # heads to un-interleave for llama's rotary layout


def _read_config(model_dir: Path) -> dict[str, Any]:
    model = ModelFolder.read(model_dir)  # config.json read once, with the same checks as everywhere
    config, arch = model.config, model.architecture
    if arch not in _ARCHS:
        raise ModelError(
            f"GGUF export does not support the {arch!r} architecture yet.", f"Supported: {', '.join(_ARCHS)}."
        )
    return config


def _rope_theta(config: dict[str, Any]) -> float:
    params = config.get("rope_parameters") or {}
    return float(config.get("rope_theta") or params.get("rope_theta") or 10000.0)


def _rope_scaling(config: dict[str, Any]) -> dict[str, Any] | None:
    scaling = config.get("rope_scaling") or config.get("rope_parameters") or {}
    kind = scaling.get("rope_type") or scaling.get("type")
    return None if kind in (None, "default") else scaling


def _head_dim(config: dict[str, Any]) -> int:
    return int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])


def _plan(model_dir: Path, config: dict[str, Any], quant: str) -> list[_Tensor]:
    import gguf

    arch_name, permute = _ARCHS[config["architectures"][0]]
    arch = next(key for key, value in gguf.MODEL_ARCH_NAMES.items() if value == arch_name)
    layers = int(config["num_hidden_layers"])
    names = gguf.get_tensor_name_map(arch, layers)
    tied = bool(config.get("tie_word_embeddings", False))
    files = weight_files(model_dir)
    if not files:
        raise ModelError(
            f"{model_dir} has no safetensors weights.", "Export needs a merged model in safetensors."
        )
    plan = []
    for file in files:
        try:
            header = read_safetensors_header(file)
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"{file.name} in {model_dir} is damaged: {exc}.", "Copy the file again."
            ) from None
        for hf_name, entry in header.items():
            if hf_name.endswith(_SKIP_SUFFIXES) or (tied and hf_name == "lm_head.weight"):
                continue
            name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if name is None:
                raise ModelError(
                    f"The tensor {hf_name!r} has no GGUF counterpart for {arch_name}.",
                    "The model folder may hold an unmerged adapter or extra weights; merge it first.",
                )
            shape = tuple(entry["shape"])
            heads = None
            if permute and name.endswith((".attn_q.weight", ".attn_k.weight")):
                key = "num_attention_heads" if ".attn_q." in name else "num_key_value_heads"
                heads = int(config.get(key) or config["num_attention_heads"])
            plan.append(_Tensor(hf_name, file, name, shape, None, heads))
    if not tied and not any(t.name == "output.weight" for t in plan):
        raise ModelError(
            f"{model_dir} has no lm_head weights although its embeddings are not tied.",
            "The weights look incomplete; merge or save the model again.",
        )
    shape = ModelShape(layers, tied_embeddings=not any(t.name == "output.weight" for t in plan))
    for t in plan:
        t.qtype = tensor_type(t.name, t.shape, quant, shape)
    return plan


def quant_of_file_type(file_type: int | None) -> str | None:
    """The QUANT_TYPES name for a GGUF's general.file_type (None for types we do not write)."""
    return next((name for name, ftype in file_types().items() if ftype == file_type), None)


def round_like_gguf(model, gguf_file: str | Path, imatrix: Mapping[str, Any] | None = None) -> int:
    """Round a merged model's weights in place as `gguf_file` stores them; returns how many.

    Each weight is quantized here, in Hugging Face layout, to the type the file declares for it
    (with the same importance matrix), then dequantized. The after-export check compares the file
    with this model: what it then measures is the writer (names, layouts, tokenizer, metadata),
    not the rounding the user chose, reported apart. Rows are quantized independently, so the
    q/k rows' order does not change their rounding, and a layout bug in the file still shows.
    """
    import gguf
    import numpy as np
    import torch
    from gguf import GGMLQuantizationType as T
    from gguf import quants

    from engine.export.gguf_quant import quantize

    config = model.config.to_dict()
    arch_name, _permute_qk = _ARCHS[config["architectures"][0]]
    arch = next(key for key, value in gguf.MODEL_ARCH_NAMES.items() if value == arch_name)
    names = gguf.get_tensor_name_map(arch, int(config["num_hidden_layers"]))
    types = {t.name: t.tensor_type for t in gguf.GGUFReader(str(gguf_file)).tensors}
    tied = "output.weight" not in types
    rounded = 0
    with torch.no_grad():
        for hf_name, param in model.named_parameters():  # a tied head is listed once, as the embeddings
            name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            qtype = types.get(name)
            if qtype is None or qtype in (T.F32, T.BF16):
                continue
            data = param.detach().float().cpu().numpy()
            if qtype == T.F16:
                back = data.astype(np.float16).astype(np.float32)
            else:
                stored = quantize(data, qtype, imatrix_for(imatrix, hf_name, name, tied))
                back = quants.dequantize(stored, qtype).reshape(data.shape)
            param.copy_(torch.from_numpy(back).to(device=param.device, dtype=param.dtype))
            rounded += 1
    return rounded


def _nbytes(shape: tuple[int, ...], qtype) -> int:
    from gguf import GGML_QUANT_SIZES

    block, size = GGML_QUANT_SIZES[qtype]
    return math.prod(shape) // block * size


def estimate_gguf_bytes(model_dir: Path, quant: str) -> int:
    """Bytes the GGUF file will take: tensor data from safetensors headers plus the vocabulary."""
    check_quant(quant)
    model_dir = Path(model_dir)
    plan = _plan(model_dir, _read_config(model_dir), quant)
    data = sum(-(-_nbytes(t.shape, t.qtype) // 32) * 32 for t in plan)
    tokenizer = model_dir / "tokenizer.json"
    vocab = tokenizer.stat().st_size if tokenizer.is_file() else 0
    return data + vocab + 1024 * 1024  # header, tensor infos and alignment: well under a MiB


def _add_hparams(writer, config: dict[str, Any], arch_name: str, quant: str, model_dir: Path) -> None:
    import gguf

    writer.add_type("model")
    writer.add_name(str(config.get("_name_or_path") or config.get("_model_name_or_path") or model_dir.name))
    writer.add_context_length(int(config.get("max_position_embeddings") or 4096))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or config["num_attention_heads"]))
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    if config.get("head_dim"):
        writer.add_key_length(int(config["head_dim"]))
        writer.add_value_length(int(config["head_dim"]))
    if arch_name == "llama":
        writer.add_vocab_size(int(config["vocab_size"]))
        writer.add_rope_dimension_count(_head_dim(config))
    scaling = _rope_scaling(config)
    if scaling is not None:
        kind = scaling.get("rope_type") or scaling.get("type")
        if kind == "linear":
            writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            writer.add_rope_scaling_factor(float(scaling["factor"]))
        elif not (kind == "llama3" and arch_name == "llama"):
            raise ModelError(
                f"RoPE scaling {kind!r} cannot be exported to GGUF yet.",
                "Supported: none, linear, and llama3 (for Llama models).",
            )
    writer.add_file_type(file_types()[quant])
    if quant.startswith("q"):
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _llama3_rope_factors(config: dict[str, Any]):
    """rope_freqs.weight for Llama 3.1+ scaling, computed as convert_hf_to_gguf.py does."""
    import numpy as np

    scaling = _rope_scaling(config)
    dim = _head_dim(config)
    freqs = 1.0 / (_rope_theta(config) ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor = float(scaling.get("factor", 8.0))
    low, high = float(scaling.get("low_freq_factor", 1.0)), float(scaling.get("high_freq_factor", 4.0))
    old_len = float(scaling.get("original_max_position_embeddings", 8192))
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < old_len / high:
            factors.append(1.0)
        elif wavelen > old_len / low:
            factors.append(factor)
        else:
            smooth = (old_len / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(factors, dtype=np.float32)


def _permute(weights, heads: int):
    # HF stores rotary halves [x0..x(d/2), y0..]; llama.cpp wants them interleaved per head.
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _load(tensor: _Tensor, handles: dict, importance=None):
    import gguf
    import numpy as np
    import torch
    from safetensors import safe_open

    from engine.export.gguf_quant import quantize

    if tensor.file not in handles:
        handles[tensor.file] = safe_open(str(tensor.file), framework="pt")
    data = handles[tensor.file].get_tensor(tensor.hf_name).to(torch.float32).numpy()
    if tensor.permute_heads:
        data = _permute(data, tensor.permute_heads)
    T = gguf.GGMLQuantizationType
    if tensor.qtype == T.F32:
        return np.ascontiguousarray(data, dtype=np.float32)
    if tensor.qtype == T.F16:
        return np.ascontiguousarray(data, dtype=np.float16)
    return quantize(data, tensor.qtype, importance)


@contextmanager
def staged_gguf(writer, out_file: Path, overwrite: bool) -> Iterator[None]:
    """Write `writer`'s header, then let the caller write its tensors, under a temp name beside
    `out_file`; the file is synced and moved into place only when complete, removed on any error."""
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_file.name}.", suffix=".partial", dir=out_file.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer.write_header_to_file(tmp)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        yield
        writer.flush()
        os.fsync(writer.fout[0].fileno())
        writer.close()
        if overwrite:
            os.replace(tmp, out_file)
        else:
            move_new(tmp, out_file)  # one that appeared while we wrote is never replaced
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(out_file.parent)


def write_gguf(
    model_dir: str | Path,
    out_file: str | Path,
    quant: str = "f16",
    *,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    overwrite: bool = False,
    imatrix: Mapping[str, Any] | None = None,
) -> Path:
    """Write `model_dir` (a plain 16/32-bit HF folder) as a GGUF file; return its path.

    `progress(fraction, message)` is called per tensor; `cancel()` is checked between tensors
    and raises Cancelled after removing the partial file. ModelError/ConfigError for bad input.
    `imatrix` (HF weight name -> mean squared input per column) weights the rounding of the
    quantized types, as llama-quantize --imatrix does.
    """
    import gguf
    import numpy as np

    report = progress or (lambda _fraction, _message: None)
    should_stop = cancel or (lambda: False)
    check_quant(quant)
    model_dir, out_file = Path(model_dir).expanduser(), Path(out_file).expanduser()
    if out_file.exists() and not overwrite:
        raise ModelError(f"{out_file} already exists.", "Pick another file name, or allow overwriting it.")
    report(0.0, "Reading the model folder")
    config = _read_config(model_dir)
    arch_name = _ARCHS[config["architectures"][0]][0]
    plan = _plan(model_dir, config, quant)
    extra = []
    if (
        arch_name == "llama"
        and _rope_scaling(config)
        and (_rope_scaling(config).get("rope_type") == "llama3")
    ):
        extra.append(("rope_freqs.weight", _llama3_rope_factors(config)))

    from engine.export.gguf_vocab import add_tokenizer

    writer = gguf.GGUFWriter(None, arch_name)
    _add_hparams(writer, config, arch_name, quant, model_dir)
    report(0.02, "Writing the tokenizer")
    add_tokenizer(writer, model_dir, int(config["vocab_size"]))
    for name, data in extra:
        writer.add_tensor_info(name, data.shape, data.dtype, data.nbytes)
    for t in plan:
        # a float dtype (not uint8) tells the writer `shape` is the logical shape, not a byte shape
        writer.add_tensor_info(
            t.name, t.shape, np.dtype(np.float32), _nbytes(t.shape, t.qtype), raw_dtype=t.qtype
        )

    handles: dict = {}
    tied = not any(t.name == "output.weight" for t in plan)
    try:
        with staged_gguf(writer, out_file, overwrite):
            for _name, data in extra:
                writer.write_tensor_data(data)
            total = sum(math.prod(t.shape) for t in plan) or 1
            done = 0
            for t in plan:
                if should_stop():
                    raise Cancelled("GGUF export cancelled")
                report(0.05 + 0.93 * done / total, f"Writing {t.name} ({t.qtype.name})")
                writer.write_tensor_data(_load(t, handles, imatrix_for(imatrix, t.hf_name, t.name, tied)))
                done += math.prod(t.shape)
    finally:
        handles.clear()
    report(1.0, "Done")
    return out_file
