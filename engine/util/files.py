"""Atomic file writes, copies, and the folders Whetstone owns.

Every write of ours goes to a temp file in the same folder, is flushed and fsynced, then
`os.replace`d over the target, so a kill at any instant leaves the previous good state.
Outputs a user names are never replaced (`write_new`, `move_new`); every copy of a folder goes
through `copy_tree`, which refuses to copy a folder into itself; temp folders next to an output
carry a marker, and only folders with it are ever removed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

import platformdirs

from engine.errors import UserError
from engine.util.units import format_duration, format_size  # noqa: F401  (their old home)


def whetstone_home() -> Path:
    """Where Whetstone keeps its data: `$WHETSTONE_HOME`, else the platform's user data dir."""
    override = os.environ.get("WHETSTONE_HOME")
    return Path(override) if override else Path(platformdirs.user_data_dir("whetstone", False))


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


def _write_temp(path: Path, data: bytes) -> Path:
    """`data` in a flushed and fsynced temp file next to `path` (removed again if writing fails)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
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
    """Move a fully written folder into place; an older `target` is removed first.

    The staging folder's temp marker is dropped on the way: what lands is an ordinary folder.
    An empty `target` (a folder the user picked for the output) is simply replaced.
    """
    (staging / TEMP_MARKER).unlink(missing_ok=True)
    fsync_tree(staging)
    try:
        if target.is_dir() and not target.is_symlink() and not any(target.iterdir()):
            target.rmdir()
        if os.path.lexists(target):
            old = target.with_name(f".{target.name}.old")
            if is_temp_dir(old):
                shutil.rmtree(old, ignore_errors=True)
            if os.path.lexists(old):  # not ours: left alone, and the end of a long run is not failed for it
                old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
            os.replace(target, old)
            _mark(old)
            try:
                os.replace(staging, target)
            except BaseException:
                os.replace(old, target)  # put the previous one back
                (target / TEMP_MARKER).unlink(missing_ok=True)
                raise
            remove_temp_dir(old)
        else:
            os.replace(staging, target)
    except BaseException:
        if staging.is_dir():
            _mark(staging)  # still ours: the caller's cleanup may remove it
        raise
    fsync_dir(target.parent)


# Temp folders next to an output (`.<out>.partial`, `.<out>.old`, `.<stem>.merge-tmp`) hold this
# file while they exist. A later run removes a leftover only when it carries it: a folder of
# that name that Whetstone did not make is never deleted.
TEMP_MARKER = ".whetstone-temp"


def _mark(folder: Path) -> None:
    (folder / TEMP_MARKER).write_text("Made by Whetstone while writing; safe to delete.\n", encoding="utf-8")


def is_temp_dir(path: Path) -> bool:
    """A temp folder of ours (a real folder holding the marker, not a link to one)."""
    path = Path(path)
    return path.is_dir() and not path.is_symlink() and (path / TEMP_MARKER).is_file()


def remove_temp_dir(path: Path) -> None:
    """Remove a temp folder of ours; UserError (io) when something else of that name is in the way."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    if not is_temp_dir(path):
        raise UserError(
            f"{path} is in the way, and it was not made by Whetstone, so it is left alone.",
            "Move or delete it yourself, then try again.",
            kind="io",
        )
    shutil.rmtree(path, ignore_errors=True)


def discard_temp_dir(path: Path) -> None:
    """Cleanup after a failure or a stop: remove the folder when it is ours; never raises."""
    if is_temp_dir(path):
        shutil.rmtree(path, ignore_errors=True)


def make_temp_dir(path: Path) -> Path:
    """Create the temp folder `path` holding our marker (a leftover of ours is removed first)."""
    path = Path(path)
    remove_temp_dir(path)
    path.mkdir(parents=True)
    _mark(path)
    return path


def is_inside(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies under it (links resolved)."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


def copy_tree(source: Path, target: Path, *, contents_only: bool = False) -> None:
    """Copy a file or a folder to `target`; every copy of a folder of ours goes through here.

    Refused (UserError) when `target` lies inside `source` or a link inside `source` points at
    a folder that contains it: either copy would copy itself until the disk is full.
    `contents_only` copies bytes without permissions (a read-only source gives a writable copy).
    """
    source, target = Path(source), Path(target)
    copy = shutil.copyfile if contents_only else shutil.copy2
    if not source.is_dir():
        copy(source, target)
        return
    if is_inside(target, source):
        raise UserError(
            f"Cannot copy {source} into {target}: that is inside the folder being copied.",
            f"Pick a place outside {source.resolve()}.",
        )

    def refuse_loops(folder: str, names: list[str]) -> list[str]:
        for name in names:
            entry = Path(folder) / name
            if entry.is_symlink() and entry.is_dir() and is_inside(folder, entry):
                raise UserError(
                    f"Cannot copy {source}: {entry} links to a folder that contains it.",
                    "Remove the link, or copy the files it points at instead.",
                )
        return []

    try:
        shutil.copytree(source, target, copy_function=copy, ignore=refuse_loops)
    except shutil.Error as exc:  # per-file failures, gathered by copytree
        first = exc.args[0][0] if exc.args and exc.args[0] else ("?", "?", str(exc))
        raise UserError(
            f"Copying {source} failed at {first[0]}: {first[2]}.",
            "Check that the files are readable and the disk has room.",
            kind="io",
        ) from None


def prepare_output_folder(folder: Path, what: str) -> Path:
    """Make sure `folder` can take `what`: created if missing, on a disk, writable; else UserError (io)."""
    folder = Path(folder)
    existing = next(p for p in (folder, *folder.parents) if os.path.lexists(p))
    if not existing.is_dir():
        raise UserError(
            f"Cannot write {what} to {folder}: {existing} is not a folder.",
            "Pick an output in a folder.",
            kind="io",
        )
    try:
        on_disk = shutil.disk_usage(existing).total > 0  # /proc, /sys and the like report no size at all
    except OSError:
        on_disk = True  # let the write below say what is wrong
    if not on_disk:
        raise UserError(
            f"Cannot write {what} to {folder}: {existing} is a system folder, not a place on a disk.",
            "Pick a folder on a disk, e.g. in your home folder.",
            kind="io",
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".whetstone-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(
            f"Cannot write {what} to {folder}: {exc.strerror or exc}.",
            "Pick a folder you can write to.",
            kind="io",
        ) from None
    return folder


def write_new(path: Path, data: bytes) -> None:
    """Write a new file atomically; UserError if `path` exists (it is never replaced)."""
    path = Path(path)
    tmp = _write_temp(path, data)
    try:
        move_new(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _exists(target: Path) -> UserError:
    return UserError(
        f"{target} already exists, and Whetstone never overwrites a file it did not write.",
        "Move or rename that file, or pick another name or folder.",
        kind="io",
    )


def move_new(source: Path, target: Path) -> None:
    """Move a finished file to `target` without ever replacing one that exists there."""
    try:
        os.link(source, target)  # fails if target exists, unlike os.replace
    except FileExistsError:
        raise _exists(target) from None
    except OSError:  # no hard links here (some network and FAT disks): check, then move
        if os.path.lexists(target):
            raise _exists(target) from None
        os.replace(source, target)
    else:
        os.unlink(source)
    fsync_dir(target.parent)
