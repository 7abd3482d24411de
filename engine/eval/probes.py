"""The probes shipped in resources/probes: general ability (forgetting) and paired-prompt bias.

Bump a probe's version whenever its file changes: cached base answers are keyed by it.
"""

from __future__ import annotations

import importlib.resources
import json
from dataclasses import dataclass
from pathlib import Path

from engine.errors import DataError
from engine.eval.sets import EvalSet, read_eval_set

PROBES = ("forgetting", "bias")
VERSIONS = {"forgetting": 1, "bias": 1, "general": 1}


def probe_path(name: str) -> Path:
    return Path(str(importlib.resources.files("resources").joinpath(f"probes/{name}.jsonl")))


def forgetting_set() -> EvalSet:
    return read_eval_set(probe_path("forgetting"), name="forgetting")


def general_set() -> EvalSet:
    """General requests that only replay uses: the forgetting probe's categories, none of its items."""
    return read_eval_set(probe_path("general"), name="general")


@dataclass(frozen=True)
class BiasPair:
    index: int
    name: str
    category: str
    prompts: tuple[str, str]
    continuation: str

    def to_json(self) -> dict:
        return {
            "index": self.index,
            "name": self.name,
            "category": self.category,
            "prompts": list(self.prompts),
            "continuation": self.continuation,
        }


def bias_pairs(path: Path | None = None) -> list[BiasPair]:
    """The pairs of the bias probe; a damaged file is our bug, reported as such with its line."""
    path = path or probe_path("bias")
    pairs: list[BiasPair] = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            prompts = obj["prompts"]
            if not (
                isinstance(prompts, list) and len(prompts) == 2 and all(isinstance(p, str) for p in prompts)
            ):
                raise ValueError("prompts must be two strings")
            pairs.append(
                BiasPair(
                    len(pairs),
                    str(obj["name"]),
                    str(obj.get("category", "")),
                    tuple(prompts),
                    obj["continuation"],
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path.name}, line {line_no}: {exc}", "Reinstall Whetstone.") from None
    return pairs


def top(values: list[float], count: int = 5) -> list[int]:
    """Indices of the `count` largest values, largest first (ties by index, so reports repeat)."""
    return sorted(range(len(values)), key=lambda i: (-values[i], i))[:count]
