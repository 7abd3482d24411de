"""What the export dialog offers: the GGUF types in the order users should meet them, each with a
one-line trade-off, and their file sizes for one run (worked out off the UI thread)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from engine.util.units import format_size


@dataclass(frozen=True)
class QuantChoice:
    key: str  # the engine's --quant value
    name: str
    bits: float  # bits per weight of the type, llama.cpp's figures: the "about" size when unsized
    tradeoff: str
    k_quant: bool  # an importance matrix helps only the K-quants' rounding search


# K-quants first: they keep far more quality than the legacy q4_0 at the same size, and Q4_K_M
# is the file people pull in Ollama and llama.cpp. q4_0 stays for old readers, last.
CHOICES = (
    QuantChoice(
        "q4_k_m",
        "Q4_K_M",
        4.85,
        "4-bit, the usual choice for llama.cpp and Ollama; small, keeps most quality",
        True,
    ),
    QuantChoice("q5_k_m", "Q5_K_M", 5.69, "5-bit, a little larger than Q4_K_M, closer to the original", True),
    QuantChoice("q6_k", "Q6_K", 6.56, "6-bit, nearly Q8_0's quality, somewhat smaller", True),
    QuantChoice("q4_k_s", "Q4_K_S", 4.58, "4-bit, a bit smaller than Q4_K_M, a bit less faithful", True),
    QuantChoice("q8_0", "Q8_0", 8.5, "8-bit, near-lossless, half the size of F16", False),
    QuantChoice("f16", "F16", 16.0, "16-bit, exact but large", False),
    QuantChoice(
        "q4_0",
        "Q4_0 (legacy)",
        4.5,
        "old 4-bit type: a bit smaller than Q4_K_M, loses far more quality",
        False,
    ),
)
BY_KEY = {c.key: c for c in CHOICES}
K_QUANTS = frozenset(c.key for c in CHOICES if c.k_quant)


def engine_quant_types() -> tuple[str, ...]:
    """The types this engine's GGUF writer writes."""
    from engine.export.gguf_write import QUANT_TYPES

    return tuple(QUANT_TYPES)


def offered(available: tuple[str, ...]) -> list[QuantChoice]:
    """The choices the writer supports, in the dialog's order (f32 is never offered: f16 is exact)."""
    return [c for c in CHOICES if c.key in available]


def default_quant(available: tuple[str, ...]) -> str:
    """Q4_K_M where the writer has it: the file users run, and the check after export says when its
    rounding changes an answer. Without K-quants, q8_0 as before (q4_0 loses too much)."""
    keys = [c.key for c in offered(available)]
    for key in ("q4_k_m", "q8_0"):
        if key in keys:
            return key
    return keys[0] if keys else ""


@dataclass(frozen=True)
class Size:
    nbytes: int
    rough: bool  # parameter count x bits per weight, not the writer's own sizing

    def text(self) -> str:
        return f"about {format_size(self.nbytes)}" if self.rough else format_size(self.nbytes)


def choice_text(choice: QuantChoice, size: Size | None, sizing: bool = True) -> str:
    """The combo's line for a type: name · size — trade-off; "sizing…" until sized, no size if unsized."""
    if size is None and not sizing:
        return f"{choice.name}  —  {choice.tradeoff}"
    return f"{choice.name}  ·  {size.text() if size else 'sizing…'}  —  {choice.tradeoff}"


def base_model(source: Path) -> Path:
    """The local base model folder of a run, adapter or checkpoint (ModelError if it is gone)."""
    from engine.export.merge import resolve_export_source

    return resolve_export_source(source).base_model


def gguf_sizes(base: Path, keys: list[str]) -> dict[str, Size]:
    """Each type's GGUF size for a model with the base's tensor shapes (a merge keeps the shapes, so
    the base folder sizes the merged model without merging). Reads safetensors headers only."""
    from engine.errors import ConfigError
    from engine.export.gguf_write import estimate_gguf_bytes

    sizes: dict[str, Size] = {}
    params = None
    for key in keys:
        try:
            sizes[key] = Size(estimate_gguf_bytes(base, key), rough=False)
        except ConfigError:  # a type the writer's sizing does not know yet
            params = _parameter_count(base) if params is None else params
            sizes[key] = Size(int(params * BY_KEY[key].bits / 8), rough=True)
    return sizes


def _parameter_count(base: Path) -> int:
    from engine.models.folder import read_safetensors_header, weight_files

    return sum(
        math.prod(entry["shape"])
        for file in weight_files(base)
        for name, entry in read_safetensors_header(file).items()
        if name != "__metadata__"
    )


def base_stem(base: Path) -> str:
    """A name for the base model's GGUF: the folder's name, or the repo's for a Hub cache snapshot."""
    if base.parent.name == "snapshots":
        return base.parent.parent.name.split("--")[-1]
    return base.name


def card_path(kind: str, out: Path) -> Path:
    """Where the export's model card is written: README.md in a merged folder, <stem>.README.md by a file."""
    return out / "README.md" if kind == "merged" else out.with_name(f"{out.stem}.README.md")
