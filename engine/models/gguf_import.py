"""Import a .gguf file as a normal Hugging Face model folder (dequantized, bf16 safetensors).

Everything that can be wrong with the file is checked first from its header, in well under a
second and without torch, so a wrong pick fails at once. (gguf.GGUFReader is not used for the
check: it parses the whole vocabulary in Python, about 8 s for the 98 MB demo file.)
The conversion then writes into a hidden staging folder that is moved into place only when
complete, so a kill at any moment leaves no folder that looks like a model.
"""

from __future__ import annotations

import math
import mmap
import struct
from collections.abc import Callable
from pathlib import Path

from engine.errors import Cancelled, ModelError, UserError
from engine.models.types import gguf_architecture_supported, gguf_architectures
from engine.util.files import discard_temp_dir, make_temp_dir, replace_dir, whetstone_home

GGUF_MAGIC = b"GGUF"
NOT_CAUSAL_LM = ("t5", "umt5", "t5encoder")  # loadable from GGUF, but not models Whetstone fine-tunes
# GGUF metadata value types -> struct format (8 = string, 9 = array are variable length)
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
MAX_ARRAY_DEPTH = 8  # real files nest none or one level; deeper ones are damaged or hostile

Progress = Callable[[float, str], None]


def read_gguf_header(path: Path) -> dict:
    """Architecture, name and tensor count of a GGUF file; ValueError if it is damaged or truncated."""
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[:4] != GGUF_MAGIC:
            raise ValueError("it does not start with the GGUF signature")
        pos = 4

        def take(fmt: str):
            nonlocal pos
            values = struct.unpack_from("<" + fmt, buf, pos)
            pos += struct.calcsize("<" + fmt)
            return values[0]

        def string() -> str:
            nonlocal pos
            length = take("Q")
            if pos + length > len(buf):
                raise ValueError("a metadata string runs past the end of the file")
            pos += length
            return bytes(buf[pos - length : pos]).decode("utf-8", errors="replace")

        def value(kind: int, depth: int = 0):
            nonlocal pos
            if kind in _SCALARS:
                return take(_SCALARS[kind])
            if kind == 8:
                return string()
            if kind == 9:
                if depth >= MAX_ARRAY_DEPTH:
                    raise ValueError(f"its metadata nests arrays more than {MAX_ARRAY_DEPTH} deep")
                item, count = take("I"), take("Q")
                # Each item takes at least this many bytes: a count the file cannot hold is damage.
                least = struct.calcsize(_SCALARS[item]) if item in _SCALARS else {8: 8, 9: 12}.get(item, 1)
                if count * least > len(buf) - pos:
                    raise ValueError("a metadata array runs past the end of the file")
                if item in _SCALARS:  # skip fixed-size arrays in one step
                    pos += count * least
                    return None
                for _ in range(count):
                    value(item, depth + 1)
                return None
            raise ValueError(f"unknown metadata type {kind}")

        version = take("I")
        if version not in (2, 3):
            raise ValueError(f"GGUF version {version} is not supported")
        tensor_count, kv_count = take("Q"), take("Q")
        meta, kinds = {}, {}
        for _ in range(kv_count):
            key = string()
            kinds[key] = take("I")
            meta[key] = value(kinds[key])
        tensors = []
        for _ in range(tensor_count):
            string()
            dims = [take("Q") for _ in range(take("I"))]
            tensors.append((dims, take("I"), take("Q")))
        align = meta.get("general.alignment", 32)
        if "general.alignment" in meta and (kinds["general.alignment"] != 4 or align < 8 or align % 8):
            raise ValueError(f"general.alignment is {align!r}, not a multiple of 8 stored as uint32")
        data_start = -(-pos // align) * align
        _check_tensor_data(tensors, data_start, len(buf))
    return {
        "architecture": meta.get("general.architecture"),
        "name": meta.get("general.name"),
        "tensors": tensor_count,
    }


def _check_tensor_data(tensors: list, data_start: int, size: int) -> None:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    for dims, kind, offset in tensors:
        try:
            block, nbytes = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
        except (ValueError, KeyError):
            raise ValueError(f"a tensor has the unknown type {kind}") from None
        if data_start + offset + math.prod(dims) // block * nbytes > size:
            raise ValueError("it is truncated (tensor data runs past the end of the file)")


def check_gguf(path: str | Path) -> dict:
    """Raise ModelError unless `path` is a GGUF file transformers can turn into a causal LM."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"{path} does not exist.", "Check the path of the .gguf file.")
    if not path.is_file():
        raise ModelError(f"{path} is not a file.", "Pick a .gguf file; a model folder can be added as it is.")
    try:
        header = read_gguf_header(path)
    except (OSError, ValueError, struct.error) as exc:
        if isinstance(exc, struct.error):
            exc = ValueError("it ends in the middle of its header")
        raise ModelError(
            f"{path.name} is not a usable GGUF file: {exc}.",
            "It may be an incomplete download or another kind of file; get the file again.",
        ) from None
    arch = header["architecture"]
    if not isinstance(arch, str):
        raise ModelError(
            f"{path.name} does not say which architecture it is (general.architecture).",
            "The file was not written by a standard GGUF converter.",
        )
    if not gguf_architecture_supported(arch) or arch in NOT_CAUSAL_LM:
        supported = ", ".join(sorted(set(gguf_architectures()) - set(NOT_CAUSAL_LM)))
        raise ModelError(
            f"{path.name} is a {arch!r} model, which cannot be converted from GGUF.",
            f"Supported: {supported}. Or get the model as safetensors and add its folder.",
        )
    return header


def check_target_name(name: str) -> None:
    from engine.util.names import check_folder_name

    try:
        check_folder_name(name, "model name")  # line breaks, bidi controls, `con`, `a:b`, `.x`
    except UserError as exc:
        raise ModelError(f"{exc.message.rstrip('.')}: it cannot be used as a model name.", exc.hint) from None


def import_gguf(
    gguf_file: str | Path,
    *,
    home: Path | None = None,
    name: str | None = None,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Path:
    """Convert `gguf_file` into home/models/<name or file stem>; return that folder.

    `progress(fraction, message)` is called at coarse phases; `cancel()` is checked between
    them and raises engine.errors.Cancelled after removing the staging folder.
    ModelError for a bad file, an unsupported architecture or an existing target.
    """
    report = progress or (lambda _fraction, _message: None)
    report(0.0, "Checking the file")
    gguf_file = Path(gguf_file).expanduser().resolve()
    check_gguf(gguf_file)
    name = name if name is not None else gguf_file.stem
    check_target_name(name)
    target = Path(home or whetstone_home()) / "models" / name
    if target.exists():
        raise ModelError(f"A model named {name!r} already exists ({target}).", "Pick another name (--name).")
    convert_into(gguf_file, target, report, cancel)
    return target


def convert_into(
    gguf_file: Path,
    target: Path,
    progress: Progress,
    cancel: Callable[[], bool] | None = None,
    replace: bool = False,
) -> None:
    """Convert through `.<name>.partial` next to `target`, then move it into place."""
    # A leftover of a killed import is removed; a folder of that name we did not make is refused.
    staging = make_temp_dir(target.with_name(f".{target.name}.partial"))
    try:
        _convert(gguf_file, staging, progress, cancel or (lambda: False))
        if target.exists() and not replace:  # appeared while we converted: never replace it
            raise ModelError(
                f"A model named {target.name!r} already exists ({target}).", "Pick another name."
            )
        replace_dir(staging, target)
    except BaseException:
        discard_temp_dir(staging)
        raise
    progress(1.0, "Done")


def _convert(gguf: Path, out_dir: Path, progress: Progress, cancel: Callable[[], bool]) -> None:
    def phase(fraction: float, message: str) -> None:
        if cancel():
            raise Cancelled("GGUF import cancelled")
        progress(fraction, message)

    phase(0.05, "Loading the conversion libraries")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    from engine.models.loading import end_of_turn_ids

    folder, name = str(gguf.parent), gguf.name
    phase(0.15, "Reading the tokenizer")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        phase(0.35, "Loading and dequantizing the weights")
        # dequantize=True: plain dense weights (newer transformers would otherwise keep GGUF blocks).
        # bf16 halves memory and disk against fp32 and loses nothing a 4-bit GGUF still had.
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=torch.bfloat16, quantization_config=GgufConfig(dequantize=True)
        )
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, IndexError, struct.error) as exc:
        raise ModelError(
            f"{gguf.name} cannot be converted: {exc}",
            "The file may be damaged or use a variant transformers does not support.",
        ) from None
    phase(0.8, "Saving the model folder")
    # save_pretrained refuses a model that still says it is GGUF-quantized; it is not any more.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.generation_config.eos_token_id = end_of_turn_ids(tokenizer, model)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    phase(0.95, "Finishing")
