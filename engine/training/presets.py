"""Run presets: named partial configs in `resources/presets/*.toml`, applied over a config.

A preset only sets what it is about (rank, length, steps, batch); the model, the data and
everything else a user chose stay as they were.
"""

from __future__ import annotations

import importlib.resources
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    settings: dict[str, Any] = field(default_factory=dict)  # dotted name -> value

    def apply(self, config: RunConfig) -> RunConfig:
        return config.with_overrides(self.settings)

    def matches(self, config: RunConfig) -> bool:
        """Whether `config` has every value this preset sets (the form shows the preset as chosen)."""
        raw = config.to_dict()
        return all(raw[g][k] == v for g, k, v in ((*d.split(".", 1), v) for d, v in self.settings.items()))


def presets_dir() -> Path:
    return Path(str(importlib.resources.files("resources").joinpath("presets")))


def load_preset(path: Path) -> Preset:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"Preset {path} is unreadable: {exc}.") from None
    meta = raw.pop("preset", {})
    RunConfig.from_dict(raw)  # the engine's own validation: a bad preset is refused, never half-applied
    settings = {f"{group}.{key}": value for group, table in raw.items() for key, value in table.items()}
    return Preset(str(meta.get("name") or path.stem), str(meta.get("description", "")), settings)


def list_presets(folder: Path | None = None) -> list[Preset]:
    """The shipped presets, in file-name order (quick test, balanced, quality)."""
    folder = folder or presets_dir()
    return [load_preset(p) for p in sorted(folder.glob("*.toml"))]
