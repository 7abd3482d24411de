"""Reviewing a big dataset in a child process: the editor's rows handed over through a folder.

A review of a million rows is minutes of pure Python. In a thread of the app it would compete
with the UI thread for the GIL, and every paint (a thousand calls into Python) would wait for
it; a child process (`whetstone-engine data review-job DIR`) runs on its own core instead. The
child re-opens the same file (checked unchanged by size and mtime), applies the editor's order
and edited rows, reviews, and writes the issues and token lengths back into the folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from engine.data.review import Review, RowIssue, review_store
from engine.data.row_store import RowStore, open_store
from engine.errors import DataError
from engine.util.files import atomic_write_text


def write_state(store: RowStore, folder: Path, model: str | None = None, max_length: int = 1024) -> None:
    """What the child needs to rebuild exactly these rows (call with a snapshot of the store)."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "order.npy", store.order)
    with open(folder / "overrides.jsonl", "w", encoding="utf-8") as handle:
        for row_id, record in store.overrides.items():
            handle.write(json.dumps([row_id, record], ensure_ascii=False) + "\n")
    stat = store.path.stat()
    meta = {
        "file": str(store.path),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "next_id": store._next_id,
        "format": store.options["fmt"],
        "columns": store.options["columns"],
        "text_mode": store.options["text_mode"],
        "model": model,
        "max_length": max_length,
    }
    atomic_write_text(folder / "job.json", json.dumps(meta))


def read_state(folder: Path) -> tuple[RowStore, Any, dict[str, Any]]:
    meta = json.loads((folder / "job.json").read_text(encoding="utf-8"))
    path = Path(meta["file"])
    stat = path.stat()
    if (stat.st_size, stat.st_mtime_ns) != (meta["size"], meta["mtime_ns"]):
        raise DataError(f"{path.name} changed on disk while it was being reviewed.", "Open it again.")
    store, shape = open_store(path, meta["format"], meta["columns"], meta["text_mode"])
    store.order = np.load(folder / "order.npy")
    with open(folder / "overrides.jsonl", encoding="utf-8") as handle:
        store.overrides = {row_id: record for row_id, record in (json.loads(line) for line in handle)}
    store._next_id = meta["next_id"]
    return store, shape, meta


def run_job(folder: Path, progress=None) -> Review:
    """The child's work: rebuild the rows, review them (with the model's tokenizer if given),
    write the result."""
    store, shape, meta = read_state(folder)
    tokenizer = None
    if meta["model"]:
        from engine.config import ModelConfig
        from engine.models.loading import load_tokenizer

        tokenizer = load_tokenizer(ModelConfig(path=meta["model"]))
    review = review_store(store, shape, tokenizer, meta["max_length"], progress)
    np.save(folder / "lengths.npy", review.lengths)
    issues = [
        [row_id, i.kind, i.message, i.severity] for row_id, found in review.issues.items() for i in found
    ]
    atomic_write_text(folder / "issues.json", json.dumps(issues, ensure_ascii=False))
    return review


def read_result(folder: Path, max_length: int) -> Review:
    review = Review(max_length=max_length, lengths=np.load(folder / "lengths.npy"))
    for row_id, kind, message, severity in json.loads((folder / "issues.json").read_text(encoding="utf-8")):
        review.issues.setdefault(row_id, []).append(RowIssue(kind, message, severity))
    return review
