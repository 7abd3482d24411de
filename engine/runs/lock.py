"""One engine per run folder: an exclusive OS lock on `RUN_DIR/engine.lock`.

The pid file (engine.runs.state) tells readers whether a run is alive, but two engines
started within a second both see "not alive" before either has written it. The lock
closes that gap: the OS grants it to one process at a time and releases it when that
process ends, however it ends. The file stays behind (unlinking a lock file races with
the next locker); it holds the pid of the last engine that took it, for the message.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

from engine.errors import ConfigError

LOCK_NAME = "engine.lock"
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)
_WINDOWS_OFFSET = 1 << 20  # msvcrt locks a byte range: lock one far past the pid so it stays readable


class RunBusy(ConfigError):
    """Another process holds the run folder's lock."""


class RunLock:
    """Held from acquire() until release() (or the process's end). Not re-entrant."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock or raise RunBusy naming the process that has it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_lock(fd):
                holder = _read_pid(fd)
                who = f"process {holder}" if holder else "another process"
                raise RunBusy(
                    f"The run {self.path.parent} is already being trained by {who}.",
                    "Wait for it to finish, or stop it first (Stop in the app, or a STOP file "
                    "in the run folder).",
                )
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode())
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, _WINDOWS_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in _NO_LOCKS:  # a file system without locks: the pid check still guards the run
            return True
        raise
    return True


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 32).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
