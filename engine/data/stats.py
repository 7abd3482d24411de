"""Token-length statistics for a whole dataset, computed the way the trainer sees the rows.

Rows go through `iter_rendered` (engine.data.tokenizing), the trainer's own tokenizing loop.
Results are cached per (file bytes, tokenizer, max_length, read options).
"""

from __future__ import annotations

import hashlib
import json
import threading
from array import array
from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.rendering import Rendered
from engine.data.tokenizing import iter_rendered
from engine.errors import Cancelled
from engine.util.files import atomic_write_text, whetstone_home

STATS_VERSION = 1
"""Bump when the numbers a cache file holds would change for the same inputs."""
HISTOGRAM_BINS = 20

Progress = Callable[[int, int | None], None]
OnRow = Callable[[int, Rendered | None, str | None], None]


@dataclass
class TokenStats:
    """Lengths are token counts before truncation; trained tokens are counted after it."""

    rows: int = 0
    min: int = 0
    median: float = 0.0
    p95: int = 0
    """The smallest length that at least 95% of the rendered rows fit in (an observed length)."""
    max: int = 0
    mean: float = 0.0
    total_tokens: int = 0
    trained_tokens: int = 0
    truncated_rows: int = 0
    truncated_tokens: int = 0
    longest_truncated_by: int = 0
    no_trainable_rows: int = 0
    unrenderable_rows: int = 0
    max_length: int = 0
    histogram: dict[str, list] = field(default_factory=lambda: {"edges": [], "counts": []})
    lengths: list[int] | None = field(default=None, repr=False, compare=False)
    """Per rendered row, in order; only on a fresh computation (never cached)."""
    timings: dict[str, float] = field(default_factory=dict, repr=False, compare=False)
    """Seconds spent rendering, tokenizing and labelling (stages overlap); not cached."""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["lengths"], data["timings"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenStats:
        """Rebuild from `as_dict()`; raises KeyError/TypeError/ValueError on anything malformed."""
        kept = [f for f in fields(cls) if f.name not in ("lengths", "timings")]
        for f in kept:
            value = data[f.name]
            if (f.type == "int" and type(value) is not int) or (
                f.type == "float" and type(value) not in (int, float)
            ):
                raise TypeError(f"{f.name} is {value!r}")
        stats = cls(**{f.name: data[f.name] for f in kept})
        hist = stats.histogram
        if not (
            isinstance(hist, dict)
            and len(hist["edges"]) == (len(hist["counts"]) + 1 if hist["counts"] else 0)
        ):
            raise ValueError("bad histogram")
        return stats


def token_length_stats(
    tokenizer,
    rows: Iterable,
    max_length: int,
    progress: Progress | None = None,
    total: int | None = None,
    batch_size: int = 1000,
    cancel: threading.Event | None = None,
    on_row: OnRow | None = None,
) -> TokenStats:
    """Token lengths, truncation and trainable-token counts of every row, for `max_length`.

    Needs a fast (Rust-backed) tokenizer for offsets. `progress(done, total)` is called after
    each batch (`total` defaults to `len(rows)` when rows have a length); `cancel` is checked
    between batches and raises `Cancelled`. `on_row(index, rendered, error)` sees every row
    (rendered None and the error message when it cannot be rendered), so a caller can report
    rows without rendering them twice.
    """
    if total is None and hasattr(rows, "__len__"):
        total = len(rows)
    stats = TokenStats(max_length=max_length)
    lengths = array("q")
    done = 0

    def check() -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("token statistics cancelled")

    check()
    with closing(iter_rendered(tokenizer, rows, max_length, batch_size, stats.timings)) as batches:
        for results in batches:
            check()
            for index, result in enumerate(results, start=done):
                if isinstance(result, ValueError):
                    stats.unrenderable_rows += 1
                    if on_row is not None:
                        on_row(index, None, str(result))
                    continue
                if on_row is not None:
                    on_row(index, result, None)
                lengths.append(len(result.input_ids) + result.truncated_tokens)
                trained = result.trained_tokens
                stats.trained_tokens += trained
                stats.no_trainable_rows += trained == 0
                if result.truncated_tokens:
                    stats.truncated_rows += 1
                    stats.truncated_tokens += result.truncated_tokens
                    stats.longest_truncated_by = max(stats.longest_truncated_by, result.truncated_tokens)
            done += len(results)
            if progress is not None:
                progress(done, total)

    stats.rows = done
    _summarise(stats, np.frombuffer(lengths, dtype=np.int64) if lengths else np.zeros(0, np.int64))
    stats.lengths = lengths.tolist()
    return stats


def _summarise(stats: TokenStats, lengths: np.ndarray) -> None:
    if not len(lengths):
        return
    stats.min, stats.max = int(lengths.min()), int(lengths.max())
    stats.median = float(np.median(lengths))
    stats.p95 = int(np.percentile(lengths, 95, method="inverted_cdf"))
    stats.total_tokens = int(lengths.sum())
    stats.mean = stats.total_tokens / len(lengths)
    counts, edges = np.histogram(lengths, bins=HISTOGRAM_BINS)
    stats.histogram = {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def tokenizer_fingerprint(tokenizer) -> str:
    """Everything about a tokenizer that changes rendered text or token ids."""
    digest = hashlib.sha256()
    digest.update(tokenizer.backend_tokenizer.to_str().encode())
    extra = [tokenizer.chat_template, tokenizer.eos_token, dict(tokenizer.special_tokens_map)]
    digest.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _library_versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("transformers", "tokenizers", "jinja2"):
        try:
            found.append(f"{name}={version(name)}")
        except PackageNotFoundError:
            found.append(f"{name}=?")
    return ",".join(found)


def stats_cache_key(tokenizer, data_file: Path, max_length: int, read_options: dict | None = None) -> str:
    parts = [
        f"v{STATS_VERSION}",
        file_sha256(Path(data_file)),
        tokenizer_fingerprint(tokenizer),
        f"max_length={max_length}",
        json.dumps(read_options or {}, sort_keys=True, default=str),
        _library_versions(),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def stats_cache_dir() -> Path:
    return whetstone_home() / "cache" / "token-stats"


def cached_token_length_stats(
    tokenizer,
    data_file: Path,
    rows: Iterable,
    max_length: int,
    progress: Progress | None = None,
    total: int | None = None,
    batch_size: int = 1000,
    cancel: threading.Event | None = None,
    read_options: dict | None = None,
) -> TokenStats:
    """`token_length_stats` of the rows read from `data_file`, reused while nothing changed.

    Pass in `read_options` whatever else decided the rows (format, column mapping, text mode):
    it is part of the key. `rows` is only iterated on a miss; a hit calls `progress(rows, rows)`
    once. An unreadable or malformed cache file is ignored and rewritten; failing to write the
    cache is not an error.
    """
    key = stats_cache_key(tokenizer, data_file, max_length, read_options)
    path = stats_cache_dir() / f"{key}.json"
    try:
        stats = TokenStats.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        stats = None
    if stats is not None:
        if progress is not None:
            progress(stats.rows, stats.rows)
        return stats
    stats = token_length_stats(
        tokenizer, rows, max_length, progress=progress, total=total, batch_size=batch_size, cancel=cancel
    )
    try:
        atomic_write_text(path, json.dumps(stats.as_dict(), indent=1))
    except OSError:
        pass  # a cache we cannot write only costs time next run
    return stats
