"""A run's LoRA adapter as a GGUF LoRA adapter: llama.cpp `--lora` and Ollama's `ADAPTER` line.

The layout is the one llama.cpp's convert_lora_to_gguf.py writes and llama-adapter.cpp reads:
general.type "adapter", general.architecture as in the base GGUF, adapter.type "lora",
adapter.lora.alpha, and per adapted weight a pair `<base tensor>.lora_a` (r x in) and `.lora_b`
(out x r). llama.cpp adds (alpha / r)·B·A·x with r read per tensor from lora_b, so peft's scale
(alpha/r; alpha/sqrt(r) with rsLoRA; per-module alpha_pattern) is written as one alpha and, for a
module whose scale differs, folded into its lora_b. Llama's q/k rows are permuted for llama.cpp's
rotary layout exactly as the base weight is (B's rows are the weight's output rows). What a GGUF
adapter cannot carry (DoRA, trained embeddings or other saved modules, biases) is refused up front.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.errors import Cancelled, ConfigError, ModelError
from engine.export.gguf_write import _ARCHS, _permute, _read_config, staged_gguf
from engine.export.merge import ExportSource
from engine.models.adapters import DAMAGED

ADAPTER_DTYPES = ("f16", "f32")
_PEFT_DEFAULT_ALPHA = 8  # peft's LoraConfig default, used when adapter_config.json omits lora_alpha
_UNSUPPORTED = "A GGUF adapter holds plain LoRA pairs only: export a merged GGUF (--gguf) instead."

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class _Pair:
    module: str  # the adapted module in the base, e.g. model.layers.0.self_attn.q_proj
    name: str  # its GGUF weight, e.g. blk.0.attn_q.weight
    a_key: str
    b_key: str
    a_shape: tuple[int, int]  # (r, in)
    b_shape: tuple[int, int]  # (out, r)
    factor: float  # folded into lora_b: peft's scale / (alpha / r)
    permute_heads: int | None


@dataclass(frozen=True)
class AdapterPlan:
    arch: str  # GGUF architecture, as the base GGUF's general.architecture
    alpha: float  # adapter.lora.alpha
    weights: Path
    pairs: tuple[_Pair, ...]
    base_name: str

    @property
    def folded(self) -> int:
        return sum(p.factor != 1.0 for p in self.pairs)


def plan_adapter(source: ExportSource) -> AdapterPlan:
    """What the GGUF adapter will hold; ModelError for an adapter or a base it cannot express."""
    import gguf

    from engine.models.adapters import WEIGHTS_NAME, check_adapter, check_finite
    from engine.models.folder import ModelFolder

    if source.full:
        raise ModelError(
            f"{source.adapter_dir} is a full fine-tuned model: it has no LoRA adapter to export.",
            "Export the whole model with --gguf (or --merged) instead.",
        )
    config = _read_config(source.base_model)  # refuses architectures outside _ARCHS
    adapter = check_adapter(source.adapter_dir, ModelFolder.read(source.base_model))
    if not adapter.safetensors:
        raise ModelError(f"{adapter.path} has no {WEIGHTS_NAME}.", "Save the adapter as safetensors.")
    check_finite(adapter)
    lora = adapter.config
    _refuse_config(adapter.path, lora)
    arch_name, permute = _ARCHS[config["architectures"][0]]
    arch = next(key for key, value in gguf.MODEL_ARCH_NAMES.items() if value == arch_name)
    names = gguf.get_tensor_name_map(arch, int(config["num_hidden_layers"]))
    rslora = bool(lora.get("use_rslora"))
    default_alpha = float(lora.get("lora_alpha", _PEFT_DEFAULT_ALPHA))
    # One alpha such that llama.cpp's alpha / r equals peft's scale for every module of rank r.
    alpha = default_alpha * (math.sqrt(adapter.rank) if rslora else 1.0)
    pairs = []
    for module, (a_key, b_key) in sorted(_pair_keys(adapter.path, adapter.header).items()):
        if module == "lm_head" and config.get("tie_word_embeddings"):
            raise ModelError(
                f"The adapter in {adapter.path} adapts lm_head, which this base ties to its embeddings; "
                "llama.cpp cannot apply that.",
                _UNSUPPORTED,
            )
        name = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if name is None:
            raise ModelError(f"The adapted layer {module!r} has no GGUF counterpart.", _UNSUPPORTED)
        a_shape, b_shape = (tuple(adapter.header[key]["shape"]) for key in (a_key, b_key))
        rank = a_shape[0]
        module_alpha = _pattern_value(lora.get("alpha_pattern"), module, default_alpha)
        scale = module_alpha / (math.sqrt(rank) if rslora else rank)
        factor = scale * rank / alpha
        heads = None
        if permute and name.endswith((".attn_q.weight", ".attn_k.weight")):
            key = "num_attention_heads" if ".attn_q." in name else "num_key_value_heads"
            heads = int(config.get(key) or config["num_attention_heads"])
        factor = 1.0 if math.isclose(factor, 1.0, rel_tol=1e-9) else factor
        pairs.append(_Pair(module, name, a_key, b_key, a_shape, b_shape, factor, heads))
    base_name = str(config.get("_name_or_path") or source.base_model.name)
    return AdapterPlan(arch_name, alpha, adapter.path / WEIGHTS_NAME, tuple(pairs), base_name)


def _refuse_config(folder: Path, lora: dict) -> None:
    refusals = {
        "use_dora": "is a DoRA adapter (weight-decomposed LoRA), which llama.cpp cannot apply",
        "modules_to_save": "also trained whole layers (modules_to_save), such as embeddings",
        "trainable_token_indices": "trained token embeddings",
        "target_parameters": "adapts parameters rather than layers",
        "fan_in_fan_out": "stores transposed weights (fan_in_fan_out)",
        "lora_bias": "trained a bias on lora_B",
        "alora_invocation_tokens": "is an activated LoRA (aLoRA)",
    }
    for key, what in refusals.items():
        if lora.get(key):
            raise ModelError(f"The adapter in {folder} {what}.", _UNSUPPORTED)
    if lora.get("bias", "none") != "none":
        raise ModelError(f"The adapter in {folder} trained biases (bias = {lora['bias']!r}).", _UNSUPPORTED)


def _pair_keys(folder: Path, header: dict) -> dict[str, tuple[str, str]]:
    parts: dict[str, dict[str, str]] = {}
    for key in header:
        if key == "__metadata__":
            continue
        for part in ("A", "B"):
            if key.endswith(f".lora_{part}.weight"):
                module = key.removesuffix(f".lora_{part}.weight").removeprefix("base_model.model.")
                parts.setdefault(module, {})[part] = key
                break
        else:
            embeddings = "embed" in key or "lm_head" in key
            what = "trained embeddings" if embeddings else "weights besides LoRA pairs"
            raise ModelError(f"The adapter in {folder} holds {what} ({key}).", _UNSUPPORTED)
    incomplete = [module for module, found in parts.items() if len(found) != 2]
    if incomplete:
        raise ModelError(f"The adapter in {folder} lacks half of the pair for {incomplete[0]}.", DAMAGED)
    return {module: (found["A"], found["B"]) for module, found in parts.items()}


def _pattern_value(patterns: dict | None, module: str, default: float) -> float:
    if not patterns:
        return default
    from peft.utils.other import get_pattern_key  # peft's own matching, so the scale is the one it used

    return float(patterns.get(get_pattern_key(list(patterns), module), default))


def expected_tensors(plan: AdapterPlan) -> Iterator[tuple[str, object]]:
    """(GGUF name, float32 array) of every tensor the file holds, permuted and scaled, in order."""
    import numpy as np
    import torch
    from safetensors import safe_open

    with safe_open(str(plan.weights), framework="pt") as handle:
        for pair in plan.pairs:
            a = handle.get_tensor(pair.a_key).to(torch.float32).numpy()
            b = handle.get_tensor(pair.b_key).to(torch.float32).numpy() * np.float32(pair.factor)
            if pair.permute_heads:
                b = _permute(b, pair.permute_heads)
            yield pair.name + ".lora_a", np.ascontiguousarray(a)
            yield pair.name + ".lora_b", np.ascontiguousarray(b)


def write_adapter_gguf(
    source: ExportSource,
    out_file: str | Path,
    *,
    dtype: str = "f16",
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `source`'s adapter as a GGUF LoRA adapter at `out_file`; return its path.

    Written under a temp name in the target folder, fsynced, moved into place when complete;
    `cancel()` is checked between tensors and raises Cancelled after removing the partial file.
    """
    import gguf
    import numpy as np

    if dtype not in ADAPTER_DTYPES:
        raise ConfigError(
            f"Adapter type {dtype!r} is not one llama.cpp keeps LoRA weights in.", "Use f16 or f32."
        )
    report = progress or (lambda _fraction, _message: None)
    out_file = Path(out_file).expanduser()
    if out_file.exists() and not overwrite:
        raise ModelError(f"{out_file} already exists.", "Pick another file name, or allow overwriting it.")
    report(0.0, "Reading the adapter")
    plan = plan_adapter(source)
    np_type = np.dtype(np.float16 if dtype == "f16" else np.float32)
    writer = gguf.GGUFWriter(None, plan.arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, plan.alpha)
    writer.add_name(source.run_dir.name if source.run_dir else source.adapter_dir.name)
    writer.add_base_model_count(1)
    writer.add_base_model_name(0, plan.base_name)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32)
    for pair in plan.pairs:
        for suffix, shape in ((".lora_a", pair.a_shape), (".lora_b", pair.b_shape)):
            writer.add_tensor_info(pair.name + suffix, shape, np_type, math.prod(shape) * np_type.itemsize)

    with staged_gguf(writer, out_file, overwrite):
        total = 2 * len(plan.pairs) or 1
        for done, (name, data) in enumerate(expected_tensors(plan)):
            if cancel is not None and cancel():
                raise Cancelled("GGUF adapter export cancelled")
            report(0.05 + 0.9 * done / total, f"Writing {name}")
            writer.write_tensor_data(data.astype(np_type))
    report(1.0, "Done")
    return out_file


def check_base_gguf(plan: AdapterPlan, base_gguf: str | Path) -> None:
    """ModelError unless `base_gguf` is a model GGUF of the same architecture with every adapted weight."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(base_gguf))
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"{base_gguf} cannot be read as a GGUF file: {exc}.", "Pick the base model's GGUF."
        ) from None
    field = lambda key: reader.fields[key].contents() if key in reader.fields else None  # noqa: E731
    hint = "Pick a GGUF of the run's base model, or a new --base-gguf name to write one."
    if field("general.type") == "adapter":
        raise ModelError(f"{base_gguf} is an adapter, not a base model.", hint)
    if field("general.architecture") != plan.arch:
        arch = field("general.architecture")
        raise ModelError(f"{base_gguf} is a {arch!r} model, not {plan.arch!r}.", hint)
    shapes = {t.name: tuple(int(n) for n in reversed(t.shape.tolist())) for t in reader.tensors}
    for pair in plan.pairs:
        want = (pair.b_shape[0], pair.a_shape[1])
        if shapes.get(pair.name) != want:
            got = shapes.get(pair.name, "missing")
            raise ModelError(f"{base_gguf} does not fit the adapter: {pair.name} is {got}, not {want}.", hint)


@dataclass(frozen=True)
class AdapterCheck:
    tensors: int
    max_abs_diff: float
    problems: tuple[str, ...]
    kind: str = "adapter-gguf"

    @property
    def passed(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        # The merged check's keys (kind, passed, prompts) so a reader of {"check": ...} can tell them apart.
        return {**asdict(self), "passed": self.passed, "prompts": [], "problems": list(self.problems)}

    def summary_lines(self) -> list[str]:
        verdict = "passed" if self.passed else "FAILED"
        lines = [f"     {problem}" for problem in self.problems[:5]]
        return lines + [
            f"Export check ({self.kind}) {verdict}: {self.tensors} LoRA tensors read back, "
            f"max abs diff {self.max_abs_diff:.1e} from the adapter's weights (16-bit rounding only)."
        ]


def check_adapter_gguf(source: ExportSource, gguf_file: str | Path) -> AdapterCheck:
    """Read the file back with gguf's reader; compare metadata and every tensor with the adapter's."""
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFReader

    plan = plan_adapter(source)
    reader = GGUFReader(str(gguf_file))
    problems = []
    field = lambda key: reader.fields[key].contents() if key in reader.fields else None  # noqa: E731
    wanted = {"general.type": "adapter", "adapter.type": "lora", "general.architecture": plan.arch}
    for key, value in wanted.items():
        if field(key) != value:
            problems.append(f"{key} is {field(key)!r}, not {value!r}")
    if field("adapter.lora.alpha") != np.float32(plan.alpha):
        problems.append(f"adapter.lora.alpha is {field('adapter.lora.alpha')!r}, not {plan.alpha:g}")
    stored = {t.name: t for t in reader.tensors}
    worst, count = 0.0, 0
    for name, want in expected_tensors(plan):
        tensor = stored.pop(name, None)
        if tensor is None or tuple(int(n) for n in reversed(tensor.shape.tolist())) != want.shape:
            problems.append(f"{name} is missing or has the wrong shape")
            continue
        got = np.asarray(tensor.data, dtype=np.float32).reshape(want.shape)
        # f16 round-to-nearest: half an ulp (2^-11 relative), 2^-25 absolute below the normal range.
        f16 = tensor.tensor_type == GGMLQuantizationType.F16
        limit = np.abs(want) * 2.0**-11 + 2.0**-25 if f16 else 0.0
        diff = np.abs(got - want)
        worst, count = max(worst, float(diff.max(initial=0.0))), count + 1
        if not np.all(diff <= limit):
            problems.append(f"{name} differs from the adapter by up to {float(diff.max()):.3g}")
    problems += [f"{name} is not in the adapter" for name in stored]
    return AdapterCheck(count, worst, tuple(problems))
