"""Stop requests: SIGINT/SIGTERM, or a STOP entry in the run folder.

Anything can appear at RUN_DIR/STOP (a user's `mkdir`, a FIFO, bytes in any encoding), so
it is only ever looked at with lstat and, when it is a regular file, read with a non-blocking
open of at most a few bytes: a FIFO must not hang the engine, odd bytes must not fail a run
whose checkpoint is already saved.
"""

from __future__ import annotations

import os
import signal
import stat
import threading
from pathlib import Path

from engine.errors import ConfigError

_READ_LIMIT = 64  # "pause" or "stop"; a larger file is still a stop request, never read whole


def read_stop_word(path: Path) -> str | None:
    """The word in a regular STOP file ("pause", "stop", ...); None when there is no such file."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped for something else since the lstat
            return None
        raw = os.read(fd, _READ_LIMIT)
    except OSError:
        return None
    finally:
        os.close(fd)
    return raw.decode("utf-8", "replace").strip()


def clear_stop_request(path: Path) -> None:
    """Remove an old STOP entry before a run starts, without following or emptying anything.

    Files, links, FIFOs and sockets are unlinked and an empty folder is removed; a folder with
    files in it is the user's, so the run is refused rather than deleting them.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        path.unlink(missing_ok=True)
        return
    try:
        path.rmdir()
    except FileNotFoundError:
        return
    except OSError:
        raise ConfigError(
            f"{path} is a folder with files in it, so it would stop the run at once.",
            "Move or delete that folder, then start the run again.",
        ) from None


class StopRequest:
    """Set by SIGINT/SIGTERM or by a STOP entry in the run folder; checked between steps."""

    def __init__(self, stop_file: Path) -> None:
        self.stop_file = stop_file
        self.signalled = False
        self._previous: dict[int, object] = {}

    def install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM ask for a checkpoint and a clean stop (main thread only)."""

        def handler(signum, _frame):
            if self.signalled:  # a second signal means "now": give up on the checkpoint
                raise KeyboardInterrupt
            self.signalled = True

        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, handler)

    def restore_signal_handlers(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    @property
    def requested(self) -> bool:
        return self.signalled or os.path.lexists(self.stop_file)  # any entry, even a dangling link

    @property
    def pause(self) -> bool:
        """A pause is a stop meant to be resumed (the GUI's Pause button writes "pause")."""
        return not self.signalled and read_stop_word(self.stop_file) == "pause"
