"""How a chat reply is generated: `GenerationSettings`, validated on creation.

Its own module so that loading (engine.chat.loading), streaming (engine.chat.replies), the
conversation store and the app can all use it without importing each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from engine.errors import ConfigError

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
            return ConfigError(f"generation.{name} = {value!r} is not allowed: it must be {allowed}.")

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
