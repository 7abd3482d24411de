"""Data files inside a project: import copies, the kept original, where edits are saved.

The user's own files are never edited: importing copies them into `datasets/`, and the first
save of an edited dataset keeps the file as it was imported under `datasets/.originals/`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.errors import DataError
from engine.util.files import copy_tree, fsync_dir

EDITABLE_SUFFIXES = (".jsonl", ".ndjson", ".parquet")


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    n = 2
    while target.exists():
        target = folder / f"{stem} ({n}){suffix}"
        n += 1
    return target


def import_dataset(project_dir: str | Path, source: str | Path) -> Path:
    """Copy a data file (or a datasets.save_to_disk folder) into the project's datasets/."""
    from engine.data.files import file_kind
    from engine.data.source import check_source

    source = Path(source).expanduser()
    check_source(source)  # missing, unreachable, unreadable, empty, a FIFO: one clear reason each
    file_kind(source)  # refuses what the data layer cannot read, with the reason
    folder = Path(project_dir) / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    target = _free_name(folder, source.name)
    staging = folder / f".{target.name}.importing"
    try:
        copy_tree(source, staging, contents_only=True)  # refuses a folder that holds the project
        staging.replace(target)
    except BaseException:
        if staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
        else:
            staging.unlink(missing_ok=True)
        raise
    fsync_dir(folder)
    return target


def original_path(data_path: str | Path) -> Path:
    data_path = Path(data_path)
    return data_path.parent / ".originals" / data_path.name


def keep_original(data_path: str | Path) -> Path | None:
    """Before a dataset is first overwritten, keep it as imported; returns where (None if kept already)."""
    data_path = Path(data_path)
    kept = original_path(data_path)
    if kept.exists() or not data_path.exists():
        return None
    kept.parent.mkdir(parents=True, exist_ok=True)
    staging = kept.with_name(f".{kept.name}.tmp")
    copy_tree(data_path, staging, contents_only=True)
    staging.replace(kept)
    fsync_dir(kept.parent)
    return kept


def save_target(data_path: str | Path) -> Path:
    """Where edits of a dataset are saved: itself for JSONL/Parquet, else a new .jsonl beside it."""
    data_path = Path(data_path)
    if data_path.is_file() and data_path.suffix.lower() in EDITABLE_SUFFIXES:
        return data_path
    name = data_path.name if data_path.is_dir() else data_path.stem
    return _free_name(data_path.parent, f"{name}.jsonl")


def append_records(data_path: str | Path, records: list[dict]) -> None:
    """Add rows at the end of a JSONL or Parquet dataset, atomically (a new file if it does not exist)."""
    import json

    from engine.util.files import atomic_write_bytes

    data_path = Path(data_path)
    suffix = data_path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        old = data_path.read_bytes() if data_path.exists() else b""
        if old and not old.endswith(b"\n"):
            old += b"\n"
        new = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
        atomic_write_bytes(data_path, old + new)
    elif suffix == ".parquet":
        from engine.data.row_store import open_store, save_store

        store, _shape = open_store(data_path)
        store.insert(list(range(len(store), len(store) + len(records))), records)
        save_store(store, data_path)
    else:
        raise DataError(
            f"Rows can only be added to JSON Lines or Parquet datasets, not {data_path.name}.",
            "Open it in the Data tab and save it (it becomes JSON Lines), or pick another dataset.",
        )
