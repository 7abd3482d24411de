"""Which GGUF type each tensor gets, and the quantizer that writes it.

The mixes follow llama.cpp's llama-quantize (src/llama-quant.cpp, llama_tensor_get_type) for dense
models, so a Q4_K_M from Whetstone has the same tensor types as one from llama-quantize:
- the output projection (or the tied token embedding that serves as it) is Q6_K, or Q8_0 when its
  rows do not split into 256-blocks (for q8_0 it stays Q8_0);
- Q4_K_M / Q5_K_M: attn_v and ffn_down are Q6_K in the layers `use_more_bits` picks (the first
  and last eighth, and every third one between);
- Q4_K_S: attn_v in the first four layers and ffn_down in the first eighth are Q5_K;
- a tensor whose rows do not split into the type's blocks falls back: Q4_K -> Q5_0,
  Q5_K -> Q5_1, Q6_K -> Q8_0, and F16 when even 32-blocks do not fit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from engine.errors import ConfigError

# Offered order: the K-quants people run first; q4_0 is the legacy 4-bit type.
QUANT_TYPES: tuple[str, ...] = ("f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_k_s", "q4_0", "f32")
K_QUANTS: tuple[str, ...] = ("q6_k", "q5_k_m", "q4_k_m", "q4_k_s")
ROWS_PER_CHUNK_ELEMENTS = 1 << 18  # 256K weights at a time: stays in cache (2x faster than 2M), same bytes

MAX_THREADS = 8  # beyond this, memory bandwidth, not cores, limits the K-quant search
_LAYER = re.compile(r"^blk\.(\d+)\.")


def check_quant(quant: str) -> None:
    if quant not in QUANT_TYPES:
        raise ConfigError(
            f"quant is {quant!r}, which is not a GGUF type Whetstone writes.",
            f"Use one of: {', '.join(QUANT_TYPES)}.",
        )


def file_types() -> dict[str, int]:
    """QUANT_TYPES name -> GGUF general.file_type (llama.cpp's LLAMA_FTYPE_*)."""
    import gguf

    F = gguf.LlamaFileType
    return {
        "f32": int(F.ALL_F32),
        "f16": int(F.MOSTLY_F16),
        "q8_0": int(F.MOSTLY_Q8_0),
        "q4_0": int(F.MOSTLY_Q4_0),
        "q6_k": int(F.MOSTLY_Q6_K),
        "q5_k_m": int(F.MOSTLY_Q5_K_M),
        "q4_k_m": int(F.MOSTLY_Q4_K_M),
        "q4_k_s": int(F.MOSTLY_Q4_K_S),
    }


def _default_type(quant: str):
    from gguf import GGMLQuantizationType as T

    return {
        "f32": T.F32,
        "f16": T.F16,
        "q8_0": T.Q8_0,
        "q4_0": T.Q4_0,
        "q6_k": T.Q6_K,
        "q5_k_m": T.Q5_K,
        "q4_k_m": T.Q4_K,
        "q4_k_s": T.Q4_K,
    }[quant]


def use_more_bits(layer: int, layers: int) -> bool:
    """llama.cpp's choice of layers that get more bits in the _M mixes."""
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


@dataclass(frozen=True)
class ModelShape:
    layers: int
    tied_embeddings: bool  # no output.weight: the token embedding is also the output projection


def tensor_type(name: str, shape: tuple[int, ...], quant: str, model: ModelShape):
    """The GGUF type of tensor `name` (numpy shape: rows, cols) in a `quant` file."""
    from gguf import GGML_QUANT_SIZES
    from gguf import GGMLQuantizationType as T

    if quant == "f32" or len(shape) < 2 or name.endswith("_norm.weight"):
        return T.F32
    wanted = _default_type(quant)
    if wanted == T.F16:
        return T.F16
    cols = shape[-1]
    layer_match = _LAYER.match(name)
    layer = int(layer_match.group(1)) if layer_match else -1
    if name == "output.weight" or (model.tied_embeddings and name == "token_embd.weight"):
        if cols % GGML_QUANT_SIZES[wanted][0] != 0:
            wanted = T.Q8_0
        elif wanted != T.Q8_0:
            wanted = T.Q6_K
    elif ".attn_v." in name:
        if quant in ("q4_k_m", "q5_k_m") and use_more_bits(layer, model.layers):
            wanted = T.Q6_K
        elif quant == "q4_k_s" and layer < 4:
            wanted = T.Q5_K
    elif ".ffn_down" in name:
        if quant in ("q4_k_m", "q5_k_m") and use_more_bits(layer, model.layers):
            wanted = T.Q6_K
        elif quant == "q4_k_s" and layer < model.layers // 8:
            wanted = T.Q5_K
    return _fallback(wanted, cols)


def _fallback(wanted, cols: int):
    from gguf import GGML_QUANT_SIZES
    from gguf import GGMLQuantizationType as T

    if cols % GGML_QUANT_SIZES[wanted][0] == 0:
        return wanted
    wanted = {T.Q4_K: T.Q5_0, T.Q5_K: T.Q5_1, T.Q6_K: T.Q8_0}.get(wanted, wanted)
    return wanted if cols % GGML_QUANT_SIZES[wanted][0] == 0 else T.F16


def imatrix_for(imatrix: Mapping | None, hf_name: str, gguf_name: str, tied: bool):
    """The importance values for one tensor, or None. A tied embedding is weighted by what enters
    the output projection (llama.cpp's imatrix sees it under token_embd.weight)."""
    if not imatrix:
        return None
    values = imatrix.get(hf_name)
    if values is None and tied and gguf_name == "token_embd.weight":
        values = imatrix.get("lm_head.weight")
    return values


def quantize(data, qtype, imatrix=None):
    """float32 (rows, cols) -> the GGUF bytes of `qtype`, as llama-quantize writes them (rows are
    independent, so chunks of rows give the same bytes with bounded memory)."""
    import numpy as np
    from gguf import GGMLQuantizationType as T
    from gguf import quants

    from engine.export import kquants

    weighted = {
        T.Q4_0: kquants.quantize_q4_0_imatrix,
        T.Q5_0: kquants.quantize_q5_0_imatrix,
        T.Q5_1: kquants.quantize_q5_1_imatrix,
    }
    k_types = {T.Q4_K: kquants.quantize_q4_k, T.Q5_K: kquants.quantize_q5_k, T.Q6_K: kquants.quantize_q6_k}
    rows = np.ascontiguousarray(data, dtype=np.float32).reshape(-1, data.shape[-1])
    weights = None if imatrix is None else np.asarray(imatrix, dtype=np.float32).reshape(-1)
    if weights is not None and weights.shape[0] != rows.shape[1]:
        weights = None  # a stale matrix for another shape: quantize unweighted rather than wrongly
    if qtype in k_types:

        def one(chunk):
            return k_types[qtype](chunk, weights)
    elif weights is not None and qtype in weighted:

        def one(chunk):
            return weighted[qtype](chunk, weights)
    else:

        def one(chunk):
            return quants.quantize(chunk, qtype)  # gguf's Q8_0/Q4_0/Q5_0/Q5_1: ggml's reference bytes

    step = max(1, ROWS_PER_CHUNK_ELEMENTS // rows.shape[1])
    chunks = [rows[start : start + step] for start in range(0, rows.shape[0], step)]
    if len(chunks) == 1:
        return one(chunks[0]).reshape(*data.shape[:-1], -1)
    # numpy releases the GIL inside each array operation: threads quantize chunks in parallel.
    with ThreadPoolExecutor(max_workers=min(len(chunks), os.cpu_count() or 1, MAX_THREADS)) as pool:
        out = np.concatenate(list(pool.map(one, chunks)))
    return out.reshape(*data.shape[:-1], -1)
