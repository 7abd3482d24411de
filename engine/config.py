"""Run configuration: typed dataclasses grouped by concern, validated on construction.

Every field has a docstring-like comment and a check in `__post_init__` whose message
names the field, the bad value and what is allowed. Configs read and write TOML with
one table per group (`[model]`, `[quantization]`, `[lora]`, `[data]`, `[training]`).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from engine.errors import ConfigError


def _check(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{name} = {value!r} is not allowed: {allowed}.")


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    in_range = isinstance(value, int) and not isinstance(value, bool) and value >= low
    in_range = in_range and (high is None or value <= high)
    rng = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    _check(in_range, name, value, rng)


def _check_float(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> None:
    is_num = isinstance(value, int | float) and not isinstance(value, bool)
    ok = is_num and (value > low if low_open else value >= low) and value <= high
    bracket = "(" if low_open else "["
    _check(ok, name, value, f"a number in {bracket}{low}, {high}]")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    _check(value in choices, name, value, "one of " + ", ".join(choices))


# Ten million steps is weeks of training even for a tiny model; numpy's seeds are 32-bit.
MAX_STEPS = 10_000_000
MAX_SEED = 2**32 - 1

DATA_FORMATS = ("auto", "messages", "sharegpt", "alpaca", "prompt_completion", "text")
# Settings with a fixed set of values (the GUI offers them in a list).
CHOICES = {
    "quantization.quant_type": ("nf4", "fp4"),
    "quantization.compute_dtype": ("auto", "bf16", "fp16", "fp32"),
    "data.format": DATA_FORMATS,
    "data.text_mode": ("blank_lines", "file"),
    "training.lr_scheduler": ("cosine", "linear", "constant"),
    "training.final_adapter": ("best", "last"),
    "training.method": ("sft", "dpo", "orpo", "kto", "full", "prompt_tuning"),
    "training.dpo_loss": ("sigmoid", "ipo", "sigmoid_norm", "hinge", "robust"),
    "training.attention": ("sdpa", "flex_attention", "eager"),
}
PREFERENCE_METHODS = ("dpo", "orpo", "kto")
# data.validation_ratio = "auto": hold out AUTO_VALIDATION_RATIO of the rows once there are at least
# AUTO_VALIDATION_MIN_ROWS; below that a held-out share would be too few rows to say anything.
AUTO_VALIDATION_MIN_ROWS = 40
AUTO_VALIDATION_RATIO = 0.1


@dataclass
class ModelConfig:
    path: str = ""
    """Local Hugging Face model folder (config.json + *.safetensors). Never a hub id."""
    trust_remote_code: bool = False
    """Kept for old configs; not consent. A folder's own code runs only if this workspace's model
    library allows it (`models allow-remote-code`) or the command has --allow-remote-code."""
    allow_pickle_weights: bool = False
    """Allow .bin/.pt weights, which can execute code when loaded. Safetensors are preferred."""

    def __post_init__(self) -> None:
        _check(isinstance(self.path, str), "model.path", self.path, "a folder path")
        _check(
            isinstance(self.trust_remote_code, bool),
            "model.trust_remote_code",
            self.trust_remote_code,
            "true or false",
        )
        _check(
            isinstance(self.allow_pickle_weights, bool),
            "model.allow_pickle_weights",
            self.allow_pickle_weights,
            "true or false",
        )


@dataclass
class QuantizationConfig:
    load_in_4bit: bool = True
    """Load the base in 4 bits (QLoRA). Off trains plain LoRA on a 16/32-bit base."""
    quant_type: str = "nf4"
    """4-bit data type: nf4 (best for normally distributed weights) or fp4."""
    double_quant: bool = True
    """Quantize the quantization constants too: saves ~0.4 bit per weight."""
    compute_dtype: str = "auto"
    """Matmul dtype: auto (bf16 on GPUs that have it, else fp16; fp32 on CPU), bf16, fp16, fp32."""

    def __post_init__(self) -> None:
        _check(
            isinstance(self.load_in_4bit, bool),
            "quantization.load_in_4bit",
            self.load_in_4bit,
            "true or false",
        )
        _check_choice("quantization.quant_type", self.quant_type, CHOICES["quantization.quant_type"])
        _check(
            isinstance(self.double_quant, bool),
            "quantization.double_quant",
            self.double_quant,
            "true or false",
        )
        _check_choice("quantization.compute_dtype", self.compute_dtype, CHOICES["quantization.compute_dtype"])


@dataclass
class LoraConfig:
    rank: int = 16
    """Adapter rank r: more capacity and memory as it grows. 8-64 is typical."""
    alpha: float = 32.0
    """Scale of the adapter's update (alpha / r, or alpha / sqrt(r) with rsLoRA)."""
    dropout: float = 0.05
    """Dropout on the adapter's input; a little regularisation for small datasets."""
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    """Layers that get adapters: ["all-linear"] (every linear layer but the head) or names like q_proj."""
    use_rslora: bool = False
    """Rank-stabilised scaling alpha / sqrt(r): keeps high ranks learning."""
    use_dora: bool = False
    """Weight-decomposed LoRA: sometimes better quality, slower and more memory."""

    def __post_init__(self) -> None:
        _check_int("lora.rank", self.rank, 1, 1024)
        _check_float("lora.alpha", self.alpha, 0.0, 4096.0, low_open=True)
        _check_float("lora.dropout", self.dropout, 0.0, 0.9)
        ok = (
            isinstance(self.target_modules, list)
            and self.target_modules
            and all(isinstance(m, str) and m for m in self.target_modules)
        )
        _check(
            bool(ok),
            "lora.target_modules",
            self.target_modules,
            'a non-empty list of layer names, or ["all-linear"]',
        )
        _check(isinstance(self.use_rslora, bool), "lora.use_rslora", self.use_rslora, "true or false")
        _check(isinstance(self.use_dora, bool), "lora.use_dora", self.use_dora, "true or false")


DATA_FIELDS = (
    "messages",
    "conversations",
    "instruction",
    "input",
    "output",
    "system",
    "prompt",
    "completion",
    "text",
)


@dataclass
class DataConfig:
    path: str = ""
    """Training data: .jsonl, .json, .csv, .tsv, .parquet, .txt, or a datasets.save_to_disk folder."""
    format: str = "auto"
    """Row shape: auto (detected from the columns), messages, sharegpt, alpaca, prompt_completion, text."""
    columns: dict[str, str] = field(default_factory=dict)
    """Your column names for the standard fields, e.g. {prompt = "question", completion = "answer"}."""
    text_mode: str = "blank_lines"
    """Plain-text files: one document per blank-line-separated paragraph, or the whole file as one."""
    max_length: int = 1024
    """Longest sequence in tokens; longer rows are truncated and counted in a warning."""
    validation_path: str = ""
    """Optional separate validation file; otherwise `validation_ratio` of the data is held out."""
    validation_ratio: float | str = "auto"
    """Share of rows held out for evaluation loss when there is no validation file: "auto" holds
    out 10% once the data has at least 40 rows (none below), 0 turns validation off."""
    seed: int = 42
    """Seed for the validation split."""
    replay_ratio: float = 0.0
    """Share of the training mix made of the base model's own answers to general prompts (replay
    against forgetting: the tuned model keeps more of what the base could do). 0 turns it off;
    0.1-0.3 is typical. The answers are generated once per base model and cached, offline."""

    def __post_init__(self) -> None:
        _check(isinstance(self.path, str), "data.path", self.path, "a file path")
        _check_choice("data.format", self.format, DATA_FORMATS)
        ok = isinstance(self.columns, dict) and all(
            k in DATA_FIELDS and isinstance(v, str) and v for k, v in self.columns.items()
        )
        _check(
            ok,
            "data.columns",
            self.columns,
            "a table of standard field -> your column name, fields: " + ", ".join(DATA_FIELDS),
        )
        _check_choice("data.text_mode", self.text_mode, CHOICES["data.text_mode"])
        _check_int("data.max_length", self.max_length, 8, 1_048_576)
        _check(
            isinstance(self.validation_path, str), "data.validation_path", self.validation_path, "a file path"
        )
        if isinstance(self.validation_ratio, int) and not isinstance(self.validation_ratio, bool):
            self.validation_ratio = float(self.validation_ratio)  # TOML's 0 for 0.0
        if self.validation_ratio != "auto":
            is_num = isinstance(self.validation_ratio, float)
            ok = is_num and 0.0 <= self.validation_ratio <= 0.5
            _check(ok, "data.validation_ratio", self.validation_ratio, '"auto" or a number in [0.0, 0.5]')
        _check_int("data.seed", self.seed, 0, MAX_SEED)
        _check_float("data.replay_ratio", self.replay_ratio, 0.0, 0.5)


@dataclass
class TrainingConfig:
    method: str = "sft"
    """How the model learns. sft: supervised, from conversations (or raw text: continued pre-training),
    4-bit base + LoRA. dpo: from preference pairs (prompt, chosen, rejected), the usual step after sft.
    orpo: from pairs, with no reference pass (sft and preference in one run). kto: from replies rated
    good or bad (pairs work too). full: every weight (or the chosen layers) in 16 bits, for small
    models only. prompt_tuning: learns a few virtual prompt tokens, the lightest method."""
    preference_beta: float = 0.1
    """dpo/kto: how far the tuned model may move from the reference (higher: closer to it); orpo: the
    weight of the preference term next to the sft loss."""
    dpo_loss: str = "sigmoid"
    """dpo's loss: sigmoid (DPO), ipo (IPO, less prone to overfit), sigmoid_norm (length-normalised,
    SimPO-style), hinge (SLiC) or robust (noisy preference labels)."""
    init_adapter: str = ""
    """Start from this adapter instead of a fresh one: a run folder (its adapter/) or an adapter folder;
    dpo/orpo/kto on top of an sft run is the usual pipeline (dpo's reference is then that adapter)."""
    prompt_tuning_tokens: int = 20
    """prompt_tuning: how many virtual tokens are learned (and put in front of every prompt)."""
    full_layers: str = "all"
    """full: which decoder layers train: "all", or layer numbers and ranges like "20-23" (embeddings
    and the output head stay frozen then)."""
    epochs: float = 1.0
    """Passes over the training data (ignored when max_steps > 0)."""
    max_steps: int = 0
    """Stop after this many optimizer steps; 0 means train for `epochs`."""
    learning_rate: float = 2e-4
    """Peak learning rate for the adapter. 1e-4 to 3e-4 is typical for LoRA."""
    lr_scheduler: str = "cosine"
    """Learning-rate schedule after warm-up: cosine, linear or constant."""
    warmup_ratio: float = 0.03
    """Share of steps spent ramping the learning rate up from zero."""
    weight_decay: float = 0.0
    """L2-style decay on adapter weights."""
    batch_size: int = 4
    """Sequences per step per device. Lower it first when memory runs out."""
    gradient_accumulation: int = 1
    """Steps whose gradients are summed before an update: larger effective batch, same memory."""
    max_grad_norm: float = 1.0
    """Gradient clipping threshold (0 disables clipping)."""
    gradient_checkpointing: bool | str = "auto"
    """Recompute activations in the backward pass: much less memory, one more forward pass per step.
    "auto" turns it on only when the run without it would need more than half the memory free when
    it starts (GPU memory on CUDA, RAM on the CPU)."""
    attention: str = "sdpa"
    """How training computes attention: sdpa (PyTorch's fused kernels), flex_attention (GPU only,
    compiled on first use; it takes packed batches without a dense mask, so padding_free "auto" packs
    there) or eager (plain matmuls, for a model whose sdpa path fails)."""
    activation_offload: bool = False
    """On a GPU, move what the backward pass keeps (the activations) to CPU memory until it is needed:
    much less GPU memory for long contexts, the same results, slower steps. Off on the CPU."""
    group_by_length: bool = True
    """Batch rows of similar length together so less compute is spent on padding."""
    padding_free: bool | str = "auto"
    """Pack each batch into one row without padding: "auto" packs on a GPU with an attention that
    needs no dense mask over the packed row, and pads on the CPU (measured faster there); true always
    packs, false never. A model whose attention mixes packed sequences (checked on your rows first)
    gets padded batches."""
    eval_every: int = 0
    """Evaluate on the validation rows every N steps (0: about 10 times per run). Every evaluation
    also writes a checkpoint, so the best one can be kept."""
    save_every: int = 50
    """Write a resumable checkpoint every N steps."""
    keep_checkpoints: int = 2
    """How many complete checkpoints to keep besides the best one (older ones are deleted)."""
    early_stopping_patience: int = 0
    """Stop once this many evaluations in a row have not lowered the validation loss (0: off)."""
    early_stopping_min_delta: float = 0.0
    """How much lower the validation loss must be to count as an improvement for early stopping."""
    final_adapter: str = "best"
    """Which weights become the run's adapter: best (lowest validation loss) or last. Without
    validation data it is always the last."""
    neftune_alpha: float = 0.0
    """NEFTune: noise added to the input embeddings while training, a cheap regulariser against
    overfitting small datasets (5 is typical; 0: off)."""
    chunked_loss: bool | str = "auto"
    """Compute the loss a chunk of tokens at a time, so the logits of a whole batch (tokens × vocabulary)
    never exist at once: far less memory for long batches, the same loss. "auto" and true: wherever
    the model's output head allows it (true also warns where it does not); false: transformers' own."""
    cpu_weight_cache: bool | str = "auto"
    """On the CPU, keep the 4-bit base's weights dequantized in RAM instead of dequantizing them at
    every step: the same weights and results, a few percent faster (3-8% measured on the demo model),
    for 4 bytes per weight (405 MiB for a 135M model). "auto": when that takes at most a quarter of the
    free memory; never on a GPU, where 4 bits is what saves its memory."""
    fused_kernels: bool | str = "auto"
    """On a CUDA GPU, Liger's fused Triton kernels for RMSNorm, RoPE and SwiGLU (Llama, Mistral,
    Qwen 2/3, Phi-3 and similar): faster steps, less activation memory, the same training within
    rounding. "auto": wherever they apply and the liger-kernel package is installed; false: never."""
    seed: int = 42
    """Seed for shuffling, dropout and adapter initialisation."""

    def __post_init__(self) -> None:
        _check_choice("training.method", self.method, CHOICES["training.method"])
        _check_float("training.preference_beta", self.preference_beta, 0.0, 100.0, low_open=True)
        _check_choice("training.dpo_loss", self.dpo_loss, CHOICES["training.dpo_loss"])
        ok = isinstance(self.init_adapter, str)
        _check(ok, "training.init_adapter", self.init_adapter, "a folder path")
        _check_int("training.prompt_tuning_tokens", self.prompt_tuning_tokens, 1, 512)
        _check(
            isinstance(self.full_layers, str) and _layer_spec_ok(self.full_layers),
            "training.full_layers",
            self.full_layers,
            '"all" or layer numbers and ranges, e.g. "0-3,22,23"',
        )
        _check_float("training.epochs", self.epochs, 0.0, 1000.0, low_open=True)
        _check_int("training.max_steps", self.max_steps, 0, MAX_STEPS)
        _check_float("training.learning_rate", self.learning_rate, 0.0, 1.0, low_open=True)
        _check_choice("training.lr_scheduler", self.lr_scheduler, CHOICES["training.lr_scheduler"])
        _check_float("training.warmup_ratio", self.warmup_ratio, 0.0, 0.5)
        _check_float("training.weight_decay", self.weight_decay, 0.0, 1.0)
        _check_int("training.batch_size", self.batch_size, 1, 4096)
        _check_int("training.gradient_accumulation", self.gradient_accumulation, 1, 4096)
        _check_float("training.max_grad_norm", self.max_grad_norm, 0.0, 1e6)
        ok = self.gradient_checkpointing == "auto" or isinstance(self.gradient_checkpointing, bool)
        _check(ok, "training.gradient_checkpointing", self.gradient_checkpointing, '"auto", true or false')
        _check_choice("training.attention", self.attention, CHOICES["training.attention"])
        _check(
            isinstance(self.activation_offload, bool),
            "training.activation_offload",
            self.activation_offload,
            "true or false",
        )
        _check(
            isinstance(self.group_by_length, bool),
            "training.group_by_length",
            self.group_by_length,
            "true or false",
        )
        ok = self.padding_free == "auto" or isinstance(self.padding_free, bool)
        _check(ok, "training.padding_free", self.padding_free, '"auto", true or false')
        _check_int("training.eval_every", self.eval_every, 0, MAX_STEPS)
        _check_int("training.save_every", self.save_every, 1, MAX_STEPS)
        _check_int("training.keep_checkpoints", self.keep_checkpoints, 1, 1000)
        _check_int("training.early_stopping_patience", self.early_stopping_patience, 0, 1000)
        _check_float("training.early_stopping_min_delta", self.early_stopping_min_delta, 0.0, 10.0)
        _check_choice("training.final_adapter", self.final_adapter, CHOICES["training.final_adapter"])
        _check_float("training.neftune_alpha", self.neftune_alpha, 0.0, 100.0)
        ok = self.chunked_loss == "auto" or isinstance(self.chunked_loss, bool)
        _check(ok, "training.chunked_loss", self.chunked_loss, '"auto", true or false')
        ok = self.cpu_weight_cache == "auto" or isinstance(self.cpu_weight_cache, bool)
        _check(ok, "training.cpu_weight_cache", self.cpu_weight_cache, '"auto", true or false')
        ok = self.fused_kernels == "auto" or isinstance(self.fused_kernels, bool)
        _check(ok, "training.fused_kernels", self.fused_kernels, '"auto", true or false')
        _check_int("training.seed", self.seed, 0, MAX_SEED)


def _layer_spec_ok(spec: str) -> bool:
    """ "all", or comma-separated layer numbers and a-b ranges (a <= b)."""
    if spec.strip() == "all":
        return True
    try:
        return bool(parse_layers(spec))
    except ValueError:
        return False


def parse_layers(spec: str) -> set[int] | None:
    """The layer numbers a training.full_layers value names (None: all); ValueError if malformed."""
    if spec.strip() == "all":
        return None
    layers: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        low, high = int(first), int(last or first)
        if low < 0 or high < low:
            raise ValueError(part)
        layers.update(range(low, high + 1))
    return layers


_GROUPS = {
    "model": ModelConfig,
    "quantization": QuantizationConfig,
    "lora": LoraConfig,
    "data": DataConfig,
    "training": TrainingConfig,
}


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        if not isinstance(raw, dict):
            raise ConfigError("The config must be a TOML document with tables like [training].")
        unknown = sorted(set(raw) - set(_GROUPS))
        if unknown:
            raise ConfigError(f"Unknown config section [{unknown[0]}]; allowed: {', '.join(_GROUPS)}.")
        groups = {}
        for name, group_cls in _GROUPS.items():
            values = raw.get(name, {})
            if not isinstance(values, dict):
                raise ConfigError(f"[{name}] must be a table of settings, not {values!r}.")
            known = {f.name for f in dataclasses.fields(group_cls)}
            extra = sorted(set(values) - known)
            if extra:
                raise ConfigError(
                    f"{name}.{extra[0]} is not a setting; allowed in [{name}]: {', '.join(sorted(known))}."
                )
            values = {
                k: (
                    float(v)
                    if isinstance(v, int) and not isinstance(v, bool) and _field_type(group_cls, k) == "float"
                    else v
                )
                for k, v in values.items()
            }
            groups[name] = group_cls(**values)
        return cls(**groups)

    def with_overrides(self, overrides: dict[str, Any]) -> RunConfig:
        """Return a copy with dotted keys (e.g. "training.max_steps") replaced, re-validated."""
        raw = self.to_dict()
        for dotted, value in overrides.items():
            group, key = dotted.split(".", 1)
            raw[group][key] = value
        return RunConfig.from_dict(raw)


def _field_type(group_cls: type, name: str) -> str:
    for f in dataclasses.fields(group_cls):
        if f.name == name:
            return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
    return ""


def load_config(path: str | Path) -> RunConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"Config file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc}.") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Config file {path} is not valid TOML: {exc}.") from None
    return RunConfig.from_dict(raw)


def config_to_toml(config: RunConfig) -> str:
    return tomli_w.dumps(config.to_dict())


_HELP: dict[str, str] | None = None


def field_help() -> dict[str, str]:
    """Each setting's docstring, by dotted name ("training.batch_size"), for tooltips and --help.

    The docstrings under the fields are the one description of each setting; they are read
    from this module's source (a frozen app without sources gets empty help, not an error).
    """
    global _HELP
    if _HELP is None:
        import ast
        import inspect
        import sys

        groups = {cls.__name__: name for name, cls in _GROUPS.items()}
        found: dict[str, str] = {}
        try:
            tree = ast.parse(inspect.getsource(sys.modules[__name__]))
        except (OSError, TypeError):
            tree = ast.Module(body=[], type_ignores=[])
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name in groups:
                body = node.body
                for first, second in zip(body, body[1:], strict=False):
                    if (
                        isinstance(first, ast.AnnAssign)
                        and isinstance(first.target, ast.Name)
                        and isinstance(second, ast.Expr)
                        and isinstance(second.value, ast.Constant)
                        and isinstance(second.value.value, str)
                    ):
                        found[f"{groups[node.name]}.{first.target.id}"] = second.value.value.strip()
        _HELP = found
    return _HELP


def field_errors(raw: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Every invalid setting of a config dict, by dotted name, with the engine's own message.

    RunConfig.from_dict stops at the first problem; a settings form needs all of them, so each
    field is validated on its own against the defaults of its group.
    """
    errors: dict[str, str] = {}
    for name in _GROUPS:
        values = raw.get(name, {})
        for key, value in values.items() if isinstance(values, dict) else ():
            try:
                RunConfig.from_dict({name: {key: value}})
            except ConfigError as exc:
                errors[f"{name}.{key}"] = exc.message
    return errors
