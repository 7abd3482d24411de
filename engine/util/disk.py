"""A full disk, said once: free-space checks before long writes, and one reading of write failures.

Libraries report a full disk in their own words: OSError with errno ENOSPC, safetensors'
"I/O error: No space left on device (os error 28)", numpy's short write "8704 requested and
4320 written", torch's "file write failed". `disk_full` recognises them all, and `io_error`
turns a failure into the UserError (kind "io") the CLI prints as its one `error:` line.
"""

from __future__ import annotations

import errno
import re
import shutil
from pathlib import Path

from engine.errors import UserError
from engine.util.units import format_size

_FULL_WORDS = (
    "No space left on device",
    "os error 28",
    "Disk quota exceeded",
    "os error 122",
    "file write failed",
)
_SHORT_WRITE = re.compile(r"\b\d+ requested and \d+ written\b")  # numpy's tofile on a full disk
FULL_HINT = "Free some space or pick a folder on another disk, then try again."


def disk_full(exc: BaseException) -> bool:
    """Whether `exc` (or what it was raised from) says the disk or the quota ran out."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(exc)
        if any(words in text for words in _FULL_WORDS) or _SHORT_WRITE.search(text):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def io_error(exc: BaseException, what: str, hint: str = "") -> UserError | None:
    """The UserError (kind io) for a full disk or an OSError while writing `what`; None otherwise."""
    if isinstance(exc, UserError):
        return None
    if disk_full(exc):
        return UserError(f"The disk is full: {what} could not be written.", hint or FULL_HINT, kind="io")
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return UserError(
            f"{what[:1].upper()}{what[1:]} could not be written: {exc.strerror or exc}{where}.",
            hint or "Check that the folder is writable and the disk is working, then try again.",
            kind="io",
        )
    return None


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """UserError (io) when `folder`'s disk has less than `needed` bytes free for `what`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise UserError(
            f"Not enough disk space for {what} in {folder}: about {format_size(needed)} needed, "
            f"{format_size(free)} free.",
            "Free some space or pick another output folder.",
            kind="io",
        )
