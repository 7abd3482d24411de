"""The base model's own greedy answers to a probe, generated once per base model and kept on disk.

The key is the model folder's fingerprint (any file changed → new answers), the probe's
version, and every setting that changes a greedy answer (quantization, device, token budget).
A damaged or foreign cache file is ignored and rewritten, never an error.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from engine.util.files import atomic_write_text, whetstone_home


def default_cache_dir() -> Path:
    return whetstone_home() / "cache" / "eval"


def cache_key(**parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class AnswerCache:
    """answers/<probe>-<key>.json: {"key_parts": {...}, "answers": [[token ids], ...]}."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def _path(self, probe: str, key: str) -> Path | None:
        return self.folder / f"{probe}-{key}.json" if self.folder else None

    def _stored(self, probe: str, parts: dict[str, Any]) -> Any:
        """The stored answers when the file is there, readable and made for exactly these parts."""
        path = self._path(probe, cache_key(**parts))
        if path is None or not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            answers = data["answers"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return answers if data.get("key_parts") == json.loads(json.dumps(parts, default=str)) else None

    def get(self, probe: str, parts: dict[str, Any], count: int) -> list[list[int]] | None:
        answers = self._stored(probe, parts)
        valid = isinstance(answers, list) and len(answers) == count and all(map(_is_ids, answers))
        return answers if valid else None

    def get_by_prompt(self, probe: str, parts: dict[str, Any]) -> dict[str, list[int]]:
        """Answers kept per prompt (a set answered a few prompts at a time); {} when none are usable."""
        answers = self._stored(probe, parts)
        if not isinstance(answers, dict):
            return {}
        return {prompt: ids for prompt, ids in answers.items() if _is_ids(ids)}

    def put(self, probe: str, parts: dict[str, Any], answers: list[list[int]] | dict[str, list[int]]) -> None:
        path = self._path(probe, cache_key(**parts))
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps({"key_parts": parts, "answers": answers}, default=str))
        except OSError:  # a full disk or a read-only home costs time on the next run, nothing else
            pass


def _is_ids(answer: Any) -> bool:
    return isinstance(answer, list) and all(isinstance(t, int) for t in answer)
