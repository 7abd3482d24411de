"""Token-length statistics for a whole dataset, computed the way the trainer sees the rows.

Rows are rendered with `render_text` and labelled with `build_rendered` (the same functions as
`render_row`), but tokenized a batch at a time, and the chat template is rendered through a
cached compiled template with per-row memoisation: a 100k-row file is counted in seconds to
tens of seconds instead of minutes. Results are cached per (file bytes, tokenizer, max_length).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.rendering import build_rendered, render_text
from engine.fsutil import atomic_write_text, whetstone_home

STATS_VERSION = 1
"""Bump when the numbers a cache file holds would change for the same inputs."""
HISTOGRAM_BINS = 20
PIPELINE = True

Progress = Callable[[int, int | None], None]


class Cancelled(Exception):
    """Raised between batches when the caller's cancel event is set; nothing is cached."""


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
        names = [f.name for f in fields(cls) if f.name not in ("lengths", "timings")]
        stats = cls(**{name: data[name] for name in names})
        hist = stats.histogram
        if not (isinstance(hist, dict) and len(hist["edges"]) == (len(hist["counts"]) + 1 if hist["counts"] else 0)):
            raise ValueError("bad histogram")
        return stats


class _ChatRenderer:
    """Stands in for the tokenizer inside `render_text`, with a quicker `apply_chat_template`.

    `conversation_spans` renders every assistant prefix through the template, and
    transformers' `apply_chat_template` spends as long on bookkeeping as jinja does on
    rendering. Here the compiled template is called directly with the same context, each
    distinct prefix is rendered once per row, and the first calls are checked against
    `apply_chat_template`; any difference or error falls back to it for the rest of the run.
    """

    CHECKS = 16

    def __init__(self, tokenizer) -> None:
        self._tokenizer = tokenizer
        self.eos_token = tokenizer.eos_token
        self.chat_template = tokenizer.chat_template
        self._memo: dict[tuple, str] = {}
        self._direct = _direct_renderer(tokenizer) if self.chat_template else None
        self._checks_left = self.CHECKS

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)

    def render(self, row) -> tuple[str, list[tuple[int, int]]]:
        self._memo.clear()  # keys are message identities: valid only within one row
        try:
            return render_text(self, row)
        finally:
            self._memo.clear()

    def apply_chat_template(self, messages, tokenize: bool = True, add_generation_prompt: bool = False, **kwargs):
        if tokenize or kwargs or self._direct is None:
            return self._tokenizer.apply_chat_template(
                messages, tokenize=tokenize, add_generation_prompt=add_generation_prompt, **kwargs)
        key = (tuple(map(id, messages)), add_generation_prompt)
        text = self._memo.get(key)
        if text is None:
            text = self._memo[key] = self._render(messages, add_generation_prompt)
        return text

    def _render(self, messages, add_generation_prompt: bool) -> str:
        def slow() -> str:
            return self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

        try:
            text = self._direct(messages, add_generation_prompt)
        except Exception:
            return slow()  # the real call raises the real error, or succeeds
        if self._checks_left > 0:
            self._checks_left -= 1
            expected = slow()
            if text != expected:
                self._direct = None
                return expected
        return text


def _direct_renderer(tokenizer) -> Callable[[list, bool], str] | None:
    """The body of `apply_chat_template(..., tokenize=False)` without its per-call setup."""
    try:
        from transformers.utils.chat_template_utils import (
            _alias_reasoning_fields,
            _compile_jinja_template,
            _plain_template_data,
        )

        compiled = _compile_jinja_template(tokenizer.get_chat_template())
        context = _plain_template_data(dict(tokenizer.special_tokens_map))
    except Exception:
        return None

    def render(messages: list, add_generation_prompt: bool) -> str:
        chat = [{k: v for k, v in message.items() if v is not None} for message in messages]
        chat = _alias_reasoning_fields(_plain_template_data(chat))
        return compiled.render(messages=chat, tools=None, documents=None,
                               add_generation_prompt=add_generation_prompt, **context)

    return render


def _batches(rows: Iterable, size: int) -> Iterator[list]:
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _tokenize(tokenizer, texts: list[str], timings: dict[str, float]) -> tuple[list, list]:
    start = time.perf_counter()
    if not texts:
        return [], []
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    timings["tokenize"] += time.perf_counter() - start
    return encoded["input_ids"], encoded["offset_mapping"]


def token_length_stats(tokenizer, rows: Iterable, max_length: int, progress: Progress | None = None,
                       total: int | None = None, batch_size: int = 1000,
                       cancel: threading.Event | None = None) -> TokenStats:
    """Token lengths, truncation and trainable-token counts of every row, for `max_length`.

    Needs a fast (Rust-backed) tokenizer for offsets. `progress(done, total)` is called after
    each batch; `cancel` is checked between batches and raises `Cancelled`. A batch is
    tokenized on a worker thread while the next one is rendered (the tokenizer releases the GIL).
    """
    if total is None and hasattr(rows, "__len__"):
        total = len(rows)
    renderer = _ChatRenderer(tokenizer)
    timings = {"render": 0.0, "tokenize": 0.0, "label": 0.0}
    lengths = array("q")
    stats = TokenStats(max_length=max_length)
    done = 0

    def finish(rendered: list, future) -> None:
        nonlocal done
        ids, offsets = future.result()
        start = time.perf_counter()
        for (text, spans), row_ids, row_offsets in zip(rendered, ids, offsets, strict=True):
            result = build_rendered(text, spans, row_ids, row_offsets, max_length)
            lengths.append(len(row_ids))
            trained = result.trained_tokens
            stats.trained_tokens += trained
            stats.no_trainable_rows += trained == 0
            if result.truncated_tokens:
                stats.truncated_rows += 1
                stats.truncated_tokens += result.truncated_tokens
                stats.longest_truncated_by = max(stats.longest_truncated_by, result.truncated_tokens)
        timings["label"] += time.perf_counter() - start

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="token-stats") as pool:
        pending = None
        for batch in _batches(rows, max(1, batch_size)):
            if cancel is not None and cancel.is_set():
                raise Cancelled("token statistics cancelled")
            start = time.perf_counter()
            rendered = []
            for row in batch:
                if isinstance(row, dict) and "messages" in row and "text" not in row:
                    row = row["messages"]  # a raw JSONL object is accepted too
                try:
                    rendered.append(renderer.render(row))
                except ValueError:
                    stats.unrenderable_rows += 1
            timings["render"] += time.perf_counter() - start
            texts = [text for text, _ in rendered]
            if PIPELINE:
                future = pool.submit(_tokenize, tokenizer, texts, timings)
            else:
                future = Future()
                future.set_result(_tokenize(tokenizer, texts, timings))
            if pending is not None:
                finish(*pending[:2])
                done += pending[2]
                if progress is not None:
                    progress(done, total)
            pending = (rendered, future, len(batch))
        if pending is not None:
            if cancel is not None and cancel.is_set():
                raise Cancelled("token statistics cancelled")
            finish(*pending[:2])
            done += pending[2]
            if progress is not None:
                progress(done, total)

    stats.rows = done
    _summarise(stats, np.frombuffer(lengths, dtype=np.int64) if lengths else np.zeros(0, np.int64))
    stats.lengths = lengths.tolist()
    stats.timings = timings
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


def stats_cache_key(tokenizer, data_file: Path, max_length: int) -> str:
    parts = [f"v{STATS_VERSION}", file_sha256(Path(data_file)), tokenizer_fingerprint(tokenizer),
             f"max_length={max_length}", _library_versions()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def stats_cache_dir() -> Path:
    return whetstone_home() / "cache" / "token-stats"


def cached_token_length_stats(tokenizer, data_file: Path, rows: Iterable, max_length: int,
                              progress: Progress | None = None, total: int | None = None,
                              batch_size: int = 1000, cancel: threading.Event | None = None) -> TokenStats:
    """`token_length_stats` of the rows read from `data_file`, reused while nothing changed.

    `rows` is only iterated on a miss. A hit calls `progress(rows, rows)` once. An unreadable
    or malformed cache file is ignored and rewritten; failing to write the cache is not an error.
    """
    key = stats_cache_key(tokenizer, data_file, max_length)
    path = stats_cache_dir() / f"{key}.json"
    try:
        stats = TokenStats.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        stats = None
    if stats is not None:
        if progress is not None:
            progress(stats.rows, stats.rows)
        return stats
    stats = token_length_stats(tokenizer, rows, max_length, progress=progress, total=total,
                               batch_size=batch_size, cancel=cancel)
    try:
        atomic_write_text(path, json.dumps(stats.as_dict(), indent=1))
    except OSError:
        pass  # a cache we cannot write only costs time next run
    return stats
