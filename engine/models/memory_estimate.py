"""How much memory a QLoRA run needs, from config.json and safetensors headers alone.

Pure arithmetic: no torch, so the GUI can call it on the UI thread as settings change (a
folder's shapes are read once and cached). The factors mirror what engine.training.recipe really
does, and were checked against allocator traces of real steps (see benchmarks/memory_fit.py):

- 4-bit path: peft's prepare_model_for_kbit_training upcasts every unquantized weight
  (embeddings, norms, lm_head) to fp32, so the residual stream is fp32. On CUDA, Trainer's
  bf16/fp16 autocast (engine.models.loading.mixed_precision_dtype) makes matmuls, attention and
  logits 16-bit; on the CPU everything is fp32.
- 16-bit path: the base stays bf16 and Trainer's bf16=True autocasts the LoRA and attention.

training.method changes what a step holds (TRL's trainers for the preference methods):
- dpo/orpo: chosen and rejected go through the model in one batch (2 sequences per row); dpo also runs
  a reference forward (adapter off, no gradients) while the policy's activations are kept.
- kto: one sequence per row with gradients; the KL completions and the reference are no-grad forwards.
- full: 16-bit weights (fp32 on the CPU), every trained weight with its gradient and AdamW moments.
- prompt_tuning: the same base as LoRA, a few virtual tokens in front of each row as the only weights.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config import parse_layers
from engine.errors import ModelError
from engine.models.activation_offload import activation_offload_plan
from engine.models.cpu_weights import cache_fits
from engine.models.folder import ModelFolder, weight_files
from engine.models.fused_kernels import fused_kernels_plan
from engine.models.packing import VARLEN_ATTENTION, padding_free_plan, training_attention
from engine.util.files import format_size

if TYPE_CHECKING:
    from engine.config import RunConfig

WEIGHTS_4BIT = "4-bit weights + quantization constants"
WEIGHTS_16BIT = "Base weights (not quantized)"
UNQUANTIZED = "Unquantized weights (embeddings, norms, lm_head)"
ADAPTER = "LoRA adapter (weights, gradients, AdamW state)"
WEIGHTS_FULL = "Model weights (trained in full)"
TRAINED = "Gradients + AdamW state of the trained weights"
SOFT_PROMPT = "Soft prompt (weights, gradients, AdamW state)"
REFERENCE = "Reference forward (adapter off, no gradients)"
ACTIVATIONS = "Activations kept for the backward pass"
LOGITS = "Logits and loss"
TEMPORARY = "Temporary buffers"
LOADING = "Weight files mapped while loading"
CPU_CACHE = "4-bit weights kept dequantized (training.cpu_weight_cache)"
OVERHEAD = {"cuda": "CUDA context + allocator overhead", "cpu": "Python process + allocator overhead"}

FIXED_OVERHEAD = {
    "cuda": 0.5 * 2**30,
    "cpu": 0.55 * 2**30,
}  # CUDA context; RSS of Python + torch + transformers
ALLOCATOR_SLACK = 0.05  # caching-allocator fragmentation on top of what tensors hold
# engine.training.chunked_loss: logits of at most this many elements exist at a time (32 MiB in fp32);
# 170 tokens for a 49k vocabulary, 55 for 152k: big enough that the head's matmul stays efficient.
CHUNK_LOGITS = 2**23
# config.json keys of models whose logits are not just the head of the hidden states (Gemma 2's
# soft-capping, Cohere's and Granite's logit scales, Falcon-H1's head multiplier): their loss stays whole.
SCALED_LOGITS_KEYS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "lm_head_multiplier")


def chunk_tokens(vocab: int) -> int:
    """Tokens per chunk of the chunked loss: about CHUNK_LOGITS logits at a time, at least 16 tokens."""
    return max(16, CHUNK_LOGITS // max(1, vocab))


QUANT_BLOCK = 64  # bitsandbytes 4-bit blocksize: one absmax per 64 weights
DOUBLE_QUANT_BLOCK = 256  # double quant: absmax in 8 bits, one fp32 constant per 256 blocks


@dataclass(frozen=True)
class MemoryPart:
    name: str
    bytes: int
    detail: str  # one short line saying how it was counted


@dataclass(frozen=True)
class MemoryEstimate:
    parts: tuple[MemoryPart, ...]
    total_bytes: int
    adapter_parameters: int = 0
    device: str = "cuda"

    def fits(self, free_bytes: int, margin: float = 0.95) -> bool:
        """Leave 5% spare: eval batches and allocator fragmentation vary during a run."""
        return self.total_bytes <= margin * free_bytes

    def part(self, name: str) -> MemoryPart | None:
        return next((p for p in self.parts if p.name == name), None)

    @property
    def tensor_bytes(self) -> int:
        """Total without the context/process overhead and mapped files:
        what torch.cuda.max_memory_allocated counts."""
        return self.total_bytes - sum(
            p.bytes for p in self.parts if p.name in (OVERHEAD[self.device], LOADING)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "total_bytes": self.total_bytes,
            "tensor_bytes": self.tensor_bytes,
            "device": self.device,
            "adapter_parameters": self.adapter_parameters,
            "parts": [asdict(p) for p in self.parts],
        }


@dataclass(frozen=True)
class ModelShapes:
    hidden: int
    intermediate: int
    layers: int
    q_dim: int  # attention heads × head_dim
    kv_dim: int  # key/value heads × head_dim
    vocab: int
    linears: tuple[tuple[str, int, int], ...]  # (module, out, in) of the 2-D weights in decoder blocks
    other_2d: tuple[tuple[str, int, int], ...]  # 2-D weights outside them (embeddings, lm_head)
    linear_params: int
    other_params: int  # everything bitsandbytes leaves unquantized
    largest_linear: int
    file_bytes: int  # the safetensors files' total size
    scaled_logits: str = ""  # the SCALED_LOGITS_KEYS entry that keeps this model's loss whole, if any
    model_type: str = ""  # config.json's model_type (which fused kernels apply)


_CACHE: dict[Path, tuple[tuple, ModelShapes]] = {}
# Decoder blocks: model.layers.N (Llama, Qwen, Mistral, Gemma...), transformer.h.N (GPT-2), blocks.N.
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|block)\.(\d+)\.")


def _layer_index(name: str) -> int | None:
    match = _LAYER.search(name)
    return int(match.group(1)) if match else None


def read_shapes(folder: Path) -> ModelShapes:
    """Shapes from config.json and the safetensors headers, cached until a file changes."""
    folder = folder.expanduser()
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelError(
            f"{folder} is not a Hugging Face model folder: config.json is missing.",
            "Pick the folder that holds config.json and *.safetensors.",
        )
    files = weight_files(folder)
    if not files:
        raise ModelError(
            f"{folder} has no weights (*.safetensors).", "Copy the model's weight files into the folder."
        )
    key = tuple((f.name, (st := f.stat()).st_mtime_ns, st.st_size) for f in [config_file, *files])
    cached = _CACHE.get(folder)
    if cached and cached[0] == key:
        return cached[1]
    shapes = _read_shapes(folder)
    if len(_CACHE) > 32:
        _CACHE.clear()
    _CACHE[folder] = (key, shapes)
    return shapes


def _read_shapes(folder: Path) -> ModelShapes:
    model = ModelFolder.read(folder)  # config.json, parsed once
    config, config_file = model.config, folder / "config.json"
    cfg = model.text_config if model.text_config and "hidden_size" not in config else config

    def need(*keys: str) -> int:
        for k in keys:
            if isinstance(cfg.get(k), int) and cfg[k] > 0:
                return cfg[k]
        raise ModelError(
            f"{config_file} has no {keys[0]}, so its memory cannot be estimated.",
            "Check that this is a complete causal language model folder.",
        )

    hidden, layers, heads, vocab = (
        need("hidden_size", "n_embd", "d_model"),
        need("num_hidden_layers", "n_layer"),
        need("num_attention_heads", "n_head"),
        need("vocab_size"),
    )
    kv_heads = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or hidden // heads
    intermediate = cfg.get("intermediate_size") or cfg.get("n_inner") or 4 * hidden

    linears, other_2d, other, has_lm_head = [], [], 0, False
    for _file, header in model.headers():
        for name, entry in header.items():
            shape = entry["shape"]
            count = math.prod(shape)
            has_lm_head = has_lm_head or name.startswith("lm_head.")
            if len(shape) == 2 and name.endswith(".weight"):
                row = (name[: -len(".weight")], shape[0], shape[1])
                if _layer_index(name) is not None:
                    linears.append(row)  # bitsandbytes quantizes these
                    continue
                other_2d.append(row)
            other += count
    tied = config.get("tie_word_embeddings", cfg.get("tie_word_embeddings", not has_lm_head))
    if has_lm_head and tied:  # one storage on load: do not count the head twice
        other -= sum(o * i for m, o, i in other_2d if m == "lm_head")
    elif not has_lm_head and not tied:
        other += vocab * hidden
    if not linears:
        raise ModelError(
            f"{folder} has no linear layers in numbered decoder blocks (model.layers.N...).",
            "Only decoder language models can be estimated.",
        )
    return ModelShapes(
        hidden,
        intermediate,
        layers,
        heads * head_dim,
        kv_heads * head_dim,
        vocab,
        tuple(linears),
        tuple(other_2d),
        sum(o * i for _, o, i in linears),
        other,
        max(o * i for _, o, i in linears),
        sum(file.stat().st_size for file, _header in model.headers()),
        next((k for k in SCALED_LOGITS_KEYS if cfg.get(k, config.get(k)) not in (None, 0, 1, False)), ""),
        str(cfg.get("model_type") or config.get("model_type") or ""),
    )


@dataclass(frozen=True)
class _Precision:
    """Bytes per element of what a training step keeps, for one device and config."""

    base: int  # 16-bit path: the base weights' dtype
    unquantized: int  # embeddings, norms, lm_head
    stream: int  # residual stream between layers (what a gradient checkpoint keeps)
    lora_input: int  # the copy of its input each LoRA A matrix keeps
    mask: int  # LoRA dropout mask: bool on CUDA (native_dropout), a float tensor on CPU
    attention: int  # q, k, v, output (and the padding bias) inside SDPA
    linear_out: int  # outputs of the base linear layers (MLP gate/up/product)
    logits: int  # bytes per logit element at the loss peak


def _precision(config: RunConfig, device: str) -> _Precision:
    name = config.quantization.compute_dtype
    compute = 4 if name == "fp32" or (name == "auto" and device == "cpu") else 2
    mask = 0 if config.lora.dropout == 0 else (1 if device == "cuda" else 4)
    autocast = (
        device == "cuda" and compute == 2
    )  # engine.models.loading.mixed_precision_dtype: Trainer's bf16/fp16
    if config.quantization.load_in_4bit:
        # peft's k-bit preparation keeps embeddings, norms and head (and so the residual stream) in
        # fp32; under autocast the matmuls, attention and logits are 16-bit (logits: bf16 + fp32
        # upcast + two fp32 gradients = 14 bytes); without it everything is fp32 (4 copies of 4 bytes).
        if autocast:
            return _Precision(compute, 4, 4, 2, mask, 2, 2, 14)
        return _Precision(compute, 4, 4, 4, mask, 4, 4, 16)
    lora_in = 2 if autocast else 4  # autocast keeps a bf16 copy; else peft casts to the fp32 adapter
    # bf16 logits (2) + fp32 upcast kept by log-softmax (4) + two fp32 gradients (8) = 14.
    return _Precision(compute, compute, compute, lora_in, mask, compute, compute, 14 if compute == 2 else 16)


def _targets(shapes: ModelShapes, targets: list[str]) -> list[tuple[str, int, int]]:
    """The (module, out, in) linears peft wraps: all-linear = every linear in the decoder blocks."""
    if targets == ["all-linear"]:
        return list(shapes.linears)
    keys = set(targets)
    return [
        (m, o, i)
        for m, o, i in shapes.linears + shapes.other_2d
        if m in keys or any(m.endswith("." + k) for k in keys)
    ]


def _lora_input_bytes(targets: list[tuple[str, int, int]], p: _Precision) -> int:
    """Bytes per token that the LoRA branches of one decoder layer keep for backward."""
    if p.mask == 0 and p.lora_input == p.stream:
        # No dropout and no cast: siblings (q/k/v, gate/up) keep one shared input tensor.
        return p.lora_input * sum({(m.rsplit(".", 1)[0], i): i for m, _, i in targets}.values())
    return (p.lora_input + p.mask) * sum(i for _, _, i in targets)


def estimate_training_memory(
    model_path: str | Path, config: RunConfig, device: str = "cuda", free_bytes: int | None = None
) -> MemoryEstimate:
    """Estimate peak memory of one training step of `config` on `model_path` (device "cuda" or "cpu").

    `free_bytes`: the memory free on the device, which "auto" gradient checkpointing decides from
    (engine.models.checkpointing); on the CPU the available RAM when not given, on CUDA unknown (on).
    """
    if device not in OVERHEAD:
        raise ValueError(f"device must be 'cuda' or 'cpu', not {device!r}")
    if config.training.gradient_checkpointing == "auto":
        from engine.models.checkpointing import free_device_memory, with_checkpointing_decided

        if free_bytes is None and device == "cpu":
            free_bytes = free_device_memory("cpu")
        config = with_checkpointing_decided(model_path, config, device, free_bytes)[0]
    shapes = read_shapes(Path(model_path))
    t = config.training
    method = t.method
    quantized = config.quantization.load_in_4bit and method != "full"
    if method == "full":  # the 16-bit path, with every trained linear keeping its input for backward
        # engine.training.full_finetune: unquantized, 16-bit on CUDA and fp32 on the CPU.
        unquantized = {"quantization.load_in_4bit": False}
        if device == "cpu":
            unquantized["quantization.compute_dtype"] = "fp32"
        p = _precision(config.with_overrides(unquantized), device)
        p = replace(p, mask=0, lora_input=p.base)
    else:
        p = _precision(config, device)
        p = replace(p, mask=0) if method == "prompt_tuning" else p
    virtual = t.prompt_tuning_tokens if method == "prompt_tuning" else 0
    # dpo/orpo: chosen and rejected side by side in one batch.
    sequences = 2 if method in ("dpo", "orpo") else 1
    batch, length = sequences * t.batch_size, config.data.max_length + virtual
    tokens = batch * length
    parts: list[MemoryPart] = []

    if method == "full":
        n = shapes.linear_params + shapes.other_params
        parts.append(MemoryPart(WEIGHTS_FULL, n * p.base, f"{n:,} parameters × {p.base} bytes"))
    elif quantized:
        consts = _quant_constant_bytes(shapes, config.quantization.double_quant)
        n = shapes.linear_params
        parts.append(
            MemoryPart(
                WEIGHTS_4BIT,
                n // 2 + consts,
                f"{n:,} linear weights × 0.5 byte + {format_size(consts)} of absmax constants "
                f"({'8-bit, double-quantized' if config.quantization.double_quant else 'fp32'})",
            )
        )
        n = shapes.other_params
        parts.append(
            MemoryPart(
                UNQUANTIZED,
                n * p.unquantized,
                f"{n:,} parameters × 4 bytes (peft upcasts what is not quantized to fp32)",
            )
        )
    else:
        n = shapes.linear_params + shapes.other_params
        parts.append(MemoryPart(WEIGHTS_16BIT, n * p.base, f"{n:,} parameters × {p.base} bytes"))

    targets, adapter = _trainable(shapes, config, p, parts)
    s = shapes
    by_layer: dict[int, list[tuple[str, int, int]]] = {}
    for target in targets:
        if (index := _layer_index(target[0])) is not None:
            by_layer.setdefault(index, []).append(target)
    lora_per_token = max((_lora_input_bytes(v, p) for v in by_layer.values()), default=0)
    # Per token and layer: each norm keeps an fp32 copy of its input; SDPA keeps q, k, v and its
    # output; the gated MLP keeps gate, up and act(gate) for the product's backward (Liger's fused
    # SwiGLU, engine.models.fused_kernels, recomputes act(gate) instead of keeping it).
    fused = fused_kernels_plan(t.fused_kernels, device, s.model_type)[0]
    per_token = (
        2 * 4 * s.hidden
        + p.attention * (2 * s.q_dim + 2 * s.kv_dim)
        + (2 if fused else 3) * p.linear_out * s.intermediate
        + lora_per_token
    )
    # On CUDA a padded batch makes torch turn the boolean mask into an additive bias that the
    # memory-efficient SDPA kernel keeps for backward: one (B, L, L) tensor per layer.
    # Padding-free batches are one row of B*L tokens with a block-diagonal mask ("auto": as the recipe
    # decides for the device, with the SDPA attention the model is loaded with).
    # TRL's preference trainers pad their batches, and prompt tuning prepends to every row.
    attention = training_attention(t.attention, device)[0]
    packed = padding_free_plan(t.padding_free, device, attention)[0] and method in ("sft", "full")
    rows, width = (1, tokens) if packed else (batch, length)
    dense_mask = device == "cuda" and attention not in VARLEN_ATTENTION  # flex: a sparse BlockMask
    bias = p.attention * rows * width * width if dense_mask else 0
    layer_bytes = tokens * per_token + bias
    # Chunked loss: one chunk's logits at a time (fp32, or 16-bit + an fp32 copy + a 16-bit gradient;
    # and logsumexp's fp32 temporary), plus the trained hidden states gathered and their gradient
    # (computed with the loss, kept for backward); else the whole batch's logits.
    # Prompt tuning's virtual tokens shift the logits off the labels: the recipe keeps its loss whole.
    chunked = t.chunked_loss is not False and not s.scaled_logits and method != "prompt_tuning"
    chunk, per_logit = min(tokens, chunk_tokens(s.vocab)), 8 if p.logits == 16 else 12
    logits = tokens * s.vocab * p.logits
    if chunked:
        logits = chunk * s.vocab * per_logit + 2 * tokens * s.hidden * p.stream
    if t.gradient_checkpointing:
        checkpoints = s.layers * tokens * s.hidden * p.stream
        # The recomputed layer is alive only after the logits' gradients are freed: it counts
        # only where it is bigger than them.
        extra = max(0, layer_bytes - logits)
        acts = MemoryPart(
            ACTIVATIONS,
            checkpoints + extra,
            f"checkpointing: one {p.stream}-byte hidden state per layer ({format_size(checkpoints)}) "
            f"+ one layer recomputed at a time ({format_size(layer_bytes)}, overlaps the logits)",
        )
    elif activation_offload_plan(t.activation_offload, device, method)[0]:
        # engine.models.activation_offload: each saved tensor goes to pinned CPU memory as it is
        # made; on the GPU, the layer being computed and the one whose backward runs.
        acts = MemoryPart(
            ACTIVATIONS,
            2 * layer_bytes,
            f"offloaded: {format_size(s.layers * layer_bytes)} wait in CPU memory; two layers' "
            f"({format_size(layer_bytes)} each) on the GPU at a time",
        )
    else:
        acts = MemoryPart(
            ACTIVATIONS,
            s.layers * layer_bytes,
            f"{s.layers} layers × {batch}×{length} tokens × {per_token:,} bytes"
            + (f" + {format_size(bias)} attention bias per layer" if bias else ""),
        )
    parts.append(acts)
    parts.append(
        MemoryPart(
            LOGITS,
            logits,
            (
                f"chunked: {chunk} of the {batch}×{length} tokens at a time × {s.vocab:,} vocab × "
                f"{per_logit} bytes + the hidden states' gradient"
                if chunked
                else f"{batch}×{length} tokens × {s.vocab:,} vocab × {p.logits} bytes "
                "(logits, log-softmax and their gradients, fp32 for the loss)"
                + (
                    f"; whole because of {s.scaled_logits or 'prompt tuning'}"
                    if t.chunked_loss is not False
                    else ""
                )
            ),
        )
    )
    # bitsandbytes dequantizes one weight at a time (to the compute dtype) for the input gradient;
    # a couple of hidden-state gradients are in flight between layers.
    dequant = s.largest_linear * p.base if quantized else 0
    grads = 2 * tokens * s.hidden * p.stream
    parts.append(
        MemoryPart(
            TEMPORARY,
            dequant + grads,
            ("largest weight dequantized + " if quantized else "") + "two hidden-state gradients in flight",
        )
    )
    if method in ("dpo", "kto"):
        parts.append(_reference_part(s, config, p, tokens, chunked, adapter))

    if device == "cpu":
        # The CPU loader maps the safetensors files and the pages stay in the process's RSS.
        parts.append(MemoryPart(LOADING, s.file_bytes, "the safetensors files, read through mmap"))
        if quantized and cache_fits(t.cpu_weight_cache, s.linear_params * p.base):
            n = s.linear_params
            parts.append(MemoryPart(CPU_CACHE, n * p.base, f"{n:,} linear weights × {p.base} bytes"))
    tensors = sum(part.bytes for part in parts)
    overhead = int(FIXED_OVERHEAD[device] + ALLOCATOR_SLACK * tensors)
    parts.append(
        MemoryPart(
            OVERHEAD[device],
            overhead,
            f"{format_size(int(FIXED_OVERHEAD[device]))} fixed + {ALLOCATOR_SLACK:.0%} fragmentation",
        )
    )
    return MemoryEstimate(tuple(parts), tensors + overhead, adapter, device)


def _trainable(
    shapes: ModelShapes, config: RunConfig, p: _Precision, parts: list[MemoryPart]
) -> tuple[list[tuple[str, int, int]], int]:
    """The linears that keep their input for backward, and the trained parameter count; adds its part."""
    t, lora = config.training, config.lora
    if t.method == "full":
        layers = parse_layers(t.full_layers)
        targets = [row for row in shapes.linears if layers is None or _layer_index(row[0]) in layers]
        # "all" also trains embeddings, norms and head; chosen layers leave everything else frozen.
        trained = sum(o * i for _, o, i in targets) + (shapes.other_params if layers is None else 0)
        # torch's AdamW keeps its two moments in the weights' dtype (bf16 moments for bf16 weights).
        per = 3 * p.base
        which = "every weight" if layers is None else f"{len(targets)} linears of layers {t.full_layers}"
        parts.append(
            MemoryPart(
                TRAINED,
                trained * per,
                f"{trained:,} parameters ({which}) × {per} bytes "
                f"(gradient {p.base} + AdamW moments {2 * p.base})",
            )
        )
        return targets, trained
    if t.method == "prompt_tuning":
        trained = t.prompt_tuning_tokens * shapes.hidden
        parts.append(
            MemoryPart(
                SOFT_PROMPT,
                trained * 16,
                f"{t.prompt_tuning_tokens} virtual tokens × {shapes.hidden} × 16 bytes "
                "(fp32 weight 4 + gradient 4 + AdamW moments 8)",
            )
        )
        return [], trained
    targets = _targets(shapes, lora.target_modules)
    adapter = sum(lora.rank * (o + i) + (o if lora.use_dora else 0) for _, o, i in targets)
    how = f"rank {lora.rank} on {len(targets)} linear layers" + (
        " + DoRA magnitudes" if lora.use_dora else ""
    )
    start = _starting_adapter(t.init_adapter)
    if start is not None:  # training on from an adapter: its own rank and targets, not the lora settings
        rank, targets_named, adapter = start
        targets = _targets(shapes, targets_named) if targets_named else targets
        how = f"the starting adapter's rank {rank}"
    parts.append(
        MemoryPart(
            ADAPTER,
            adapter * 16,
            f"{adapter:,} parameters × 16 bytes (fp32 weight 4 + gradient 4 + AdamW moments 8), {how}",
        )
    )
    return targets, adapter


def _starting_adapter(path: str) -> tuple[int, list[str], int] | None:
    """(rank, target module names, parameters) of training.init_adapter, from its config and safetensors
    header; None when there is none or it cannot be read (the run itself says why)."""
    if not path:
        return None
    from engine.errors import UserError
    from engine.models.adapters import check_adapter

    try:
        found = check_adapter(path)
    except (UserError, OSError):
        return None
    if not found.header or found.rank <= 0:
        return None
    count = sum(math.prod(entry["shape"]) for name, entry in found.header.items() if name != "__metadata__")
    named = found.config.get("target_modules")
    targets = [named] if isinstance(named, str) else [str(m) for m in named or []]
    return found.rank, targets, count


def _reference_part(
    s: ModelShapes, config: RunConfig, p: _Precision, tokens: int, chunked: bool, adapter: int
) -> MemoryPart:
    """dpo's reference log-probs (and kto's KL and reference passes): no-grad forwards of the batch run
    while the policy's activations are kept, one layer alive at a time. A run that starts from an adapter
    keeps a frozen fp32 copy of it as the reference."""
    per_token = 3 * p.stream * s.hidden + p.attention * (2 * s.q_dim + 2 * s.kv_dim)
    per_token += 3 * p.linear_out * s.intermediate
    if chunked:
        logits = min(tokens, chunk_tokens(s.vocab)) * s.vocab * (8 if p.logits == 16 else 12)
    else:
        logits = tokens * s.vocab * (p.linear_out + 4)
    copy = 4 * adapter if config.training.init_adapter else 0
    detail = f"one layer of {tokens:,} tokens at a time ({format_size(tokens * per_token)}) + logits"
    return MemoryPart(
        REFERENCE,
        tokens * per_token + logits + copy,
        detail + (f" + the starting adapter's copy ({format_size(copy)})" if copy else ""),
    )


def _quant_constant_bytes(shapes: ModelShapes, double_quant: bool) -> int:
    total = 0
    for _, out_f, in_f in shapes.linears:
        blocks = math.ceil(out_f * in_f / QUANT_BLOCK)
        # Double quant: 8-bit absmax per block, one fp32 scale per 256 blocks + a 256-entry fp32 code.
        total += blocks + 4 * math.ceil(blocks / DOUBLE_QUANT_BLOCK) + 1024 if double_quant else 4 * blocks
    return total


# The advice on what to change lives in its own module; importable from here as before.
from engine.models.fit_advice import full_shortfall, suggestions  # noqa: E402 (it imports this module)

__all__ = [
    "full_shortfall",
    "MemoryEstimate",
    "MemoryPart",
    "estimate_training_memory",
    "suggestions",
    "read_shapes",
]
