"""Chat generation: settings, loading a base (+ adapter) for chat, and streaming wrappers.

The streaming machinery (stats, stop strings, cancel) lives in `engine.chat.replies`;
`start_reply` here is its public entry point, `stream_chat` / `generate_text` are the
simple forms the CLI uses.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config import ModelConfig, QuantizationConfig
from engine.errors import ConfigError, ModelError
from engine.models.loading import load_model, load_tokenizer

if TYPE_CHECKING:
    from engine.chat.replies import ReplyStream

MAX_SEED = 2**63 - 1


@dataclass
class GenerationSettings:
    """How a reply is generated. Validated on creation (ConfigError naming field and range)."""

    max_new_tokens: int = 256
    """Most tokens in a reply (>= 1)."""
    temperature: float = 0.0
    """0 means greedy (always the most likely token); higher is more random (>= 0)."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p, in (0, 1]."""
    top_k: int = 0
    """Keep only the k most likely tokens; 0 disables it (>= 0)."""
    repetition_penalty: float = 1.0
    """> 1 discourages repeating tokens already in the conversation; 1 is off (> 0)."""
    seed: int | None = None
    """Same seed + same settings + same model gives the same sampled text; None is random."""
    stop_strings: list[str] = field(default_factory=list)
    """Generation ends before the first of these strings; the string itself is never shown."""
    min_new_tokens: int = 0
    """End-of-turn tokens are suppressed until this many tokens are out (benchmarks, tests)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def bad(name: str, value: Any, allowed: str) -> ConfigError:
            return ConfigError(
                f"generation.{name} = {value!r} is not allowed: it must be {allowed}."
            )

        def number(name: str, integer: bool = False) -> float:
            value = getattr(self, name)
            kinds = (int,) if integer else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) or value != value:
                raise bad(name, value, "an integer" if integer else "a number")
            return value

        if number("max_new_tokens", integer=True) < 1:
            raise bad("max_new_tokens", self.max_new_tokens, "at least 1")
        if not 0 <= number("min_new_tokens", integer=True) <= self.max_new_tokens:
            raise bad(
                "min_new_tokens",
                self.min_new_tokens,
                f"between 0 and max_new_tokens ({self.max_new_tokens})",
            )
        if number("temperature") < 0:
            raise bad("temperature", self.temperature, "0 (greedy) or more")
        if not 0 < number("top_p") <= 1:
            raise bad("top_p", self.top_p, "more than 0 and at most 1 (1 disables it)")
        if number("top_k", integer=True) < 0:
            raise bad("top_k", self.top_k, "0 (off) or more")
        if number("repetition_penalty") <= 0:
            raise bad("repetition_penalty", self.repetition_penalty, "more than 0 (1 is off)")
        if self.seed is not None and not 0 <= number("seed", integer=True) <= MAX_SEED:
            raise bad("seed", self.seed, f"empty or between 0 and {MAX_SEED}")
        if not isinstance(self.stop_strings, list | tuple) or not all(
            isinstance(s, str) and s for s in self.stop_strings
        ):
            raise bad("stop_strings", self.stop_strings, "a list of non-empty strings")
        self.stop_strings = list(self.stop_strings)

    @property
    def sampling(self) -> bool:
        return self.temperature > 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["seed"] is None:
            del data["seed"]  # TOML has no null; absent means None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationSettings:
        """Settings from a stored dict; unknown keys (from a newer version) are ignored."""
        if not isinstance(data, dict):
            raise ConfigError(f"Generation settings must be a table, not {type(data).__name__}.")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def resolve_adapter_dir(path: str | Path) -> Path:
    """Accept an adapter folder, a checkpoint folder or a run folder (uses RUN_DIR/adapter)."""
    path = Path(path).expanduser()
    for candidate in (path, path / "adapter"):
        if (candidate / "adapter_config.json").is_file():
            return candidate
    raise ModelError(
        f"{path} holds no LoRA adapter (adapter_config.json is missing).",
        "Pass a run folder that finished, its adapter/ folder, or a checkpoint folder.",
    )


def load_for_chat(
    model_path: str,
    adapter: str | None = None,
    quant: QuantizationConfig | None = None,
    model_cfg: ModelConfig | None = None,
):
    """Load the 4-bit base (and adapter) for generation; returns (model, tokenizer)."""
    model_cfg = model_cfg or ModelConfig(path=model_path)
    tokenizer = load_tokenizer(model_cfg)
    adapter_dir = resolve_adapter_dir(adapter) if adapter else None
    model = load_model(model_cfg, quant or QuantizationConfig())
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    return model, tokenizer


def start_reply(
    model,
    tokenizer,
    messages: list[dict[str, str]],
    settings: GenerationSettings | None = None,
    cancel: threading.Event | None = None,
) -> ReplyStream:
    """Start generating the assistant's reply on a worker thread; see `engine.chat.replies`."""
    from engine.chat.replies import start_reply as start

    return start(model, tokenizer, messages, settings, cancel)


def stream_chat(
    model,
    tokenizer,
    messages: list[dict[str, str]],
    settings: GenerationSettings | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[str]:
    """Yield the reply in chunks as tokens are generated; setting `cancel` stops between tokens."""
    yield from start_reply(model, tokenizer, messages, settings, cancel)


def generate_text(model, tokenizer, prompt: str, settings: GenerationSettings | None = None) -> str:
    """The whole reply to one user prompt, as a string."""
    return "".join(stream_chat(model, tokenizer, [{"role": "user", "content": prompt}], settings))
