"""Checking a data path before anything opens it: one clear reason for each way it can be unusable.

`Path.exists()` hides why a path cannot be reached (a folder without search permission, a
symlink loop), and opening a FIFO blocks forever, so the path is looked at with one `stat`
and only regular files and folders are accepted.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from engine.errors import DataError

_SPECIAL = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def stat_source(path: Path, what: str = "Data file") -> os.stat_result:
    """`stat` of a data path, or a DataError that says why it cannot be used."""
    try:
        return path.stat()
    except FileNotFoundError:
        raise DataError(f"{what} {path} does not exist.", "Check the path.") from None
    except PermissionError:
        raise DataError(
            f"Cannot reach {path}: permission denied (a folder on the way cannot be searched).",
            "Check the permissions of the folders above it.",
        ) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataError(
                f"{path} is a symbolic link that loops back on itself.", "Point the link at a real file."
            ) from None
        if exc.errno == errno.ENOTDIR:
            raise DataError(
                f"{what} {path} does not exist: a part of the path is a file, not a folder.",
                "Check the path.",
            ) from None
        raise DataError(f"Cannot reach {path}: {exc.strerror or exc}.", "Check the path.") from None


def check_source(path: Path, what: str = "Data file") -> os.stat_result:
    """A data file or folder that can be read: regular, readable and (for a file) not empty.

    Raises DataError otherwise. A file's first byte is read to prove it is readable; a
    special file (FIFO, socket, device) is refused before anything opens it.
    """
    info = stat_source(path, what)
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        if not os.access(path, os.R_OK | os.X_OK):
            raise DataError(f"Cannot read the folder {path}: permission denied.", "Check its permissions.")
        return info
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _SPECIAL if test(mode)), "not a regular file")
        raise DataError(
            f"{what} {path} is {kind}, not a regular file.", "Save the data to a file and pass that."
        )
    if info.st_size == 0:
        raise DataError(f"{what} {path} is empty.", "Add some rows.")
    try:
        # O_NONBLOCK: should the path have become a FIFO since the stat, opening it must not hang.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise DataError(
                    f"{what} {path} is not a regular file.", "Save the data to a file and pass that."
                )
            os.read(fd, 1)
        finally:
            os.close(fd)
    except PermissionError:
        raise DataError(f"Cannot read {path}: permission denied.", "Check the file's permissions.") from None
    except OSError as exc:
        raise DataError(
            f"Cannot read {path}: {exc.strerror or exc}.", "Check the file and its disk."
        ) from None
    return info
