"""Atomic file writes and the folders Whetstone owns.

Every write of ours goes to a temp file in the same folder, is flushed and fsynced, then
`os.replace`d over the target, so a kill at any instant leaves the previous good state.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import platformdirs


def whetstone_home() -> Path:
    """Where Whetstone keeps its data: `$WHETSTONE_HOME`, else the platform's user data dir."""
    override = os.environ.get("WHETSTONE_HOME")
    return Path(override) if override else Path(platformdirs.user_data_dir("whetstone", False))


def format_size(n: int) -> str:
    """A file size for people: 512 bytes, 7.8 KiB, 1.2 GiB."""
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def format_duration(seconds: float) -> str:
    """A duration for people: 45 s, 12 min, 3 h 05 min."""
    seconds = int(round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def relative_inside(folder: Path, value: str | None) -> str | None:
    """`value` relative to `folder` when it is an absolute path inside it (so the folder can move)."""
    if not value or not Path(value).is_absolute():
        return value
    try:
        return Path(value).resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return value


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def fsync_tree(root: Path) -> None:
    """Flush every file under `root` to disk (used before marking a checkpoint complete)."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def replace_dir(staging: Path, target: Path) -> None:
    """Move a fully written folder into place; an older `target` is removed first."""
    fsync_tree(staging)
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)
    fsync_dir(target.parent)
