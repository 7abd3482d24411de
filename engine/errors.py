"""Errors the engine reports to a person, as opposed to bugs.

A `UserError` is bad input or an impossible situation the user can fix: the CLI prints
`error: <message>` (plus the hint) and exits with code 2, never a traceback.
"""

from __future__ import annotations

import sys

# The exit code of a UserError; the CLI's whole protocol (every code, the error line) is
# engine.cli.protocol, which takes this from here so that lower layers can name it too.
EXIT_BAD_INPUT = 2


class UserError(Exception):
    """Something the user can fix. `kind` is one of: config, data, model, oom, io, diverged."""

    def __init__(self, message: str, hint: str = "", kind: str = "config") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.kind = kind

    def one_line(self) -> str:
        return " ".join(f"{self.message} {self.hint}".split())  # the CLI promises exactly one line


def is_out_of_memory(exc: BaseException) -> bool:
    """RAM (MemoryError) or GPU memory (torch.OutOfMemoryError) ran out; torch is not imported here."""
    return isinstance(exc, MemoryError) or is_gpu_out_of_memory(exc)


def is_gpu_out_of_memory(exc: BaseException) -> bool:
    """GPU memory ran out (torch.OutOfMemoryError), where other programs may hold part of it."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(exc, torch.OutOfMemoryError)


class Cancelled(Exception):
    """The user cancelled long work (a scan, an import, an export); whatever it made is removed."""


class ConfigError(UserError):
    """A config value is outside what is allowed; the message names field, value and range."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message, hint, kind="config")


class DataError(UserError):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message, hint, kind="data")


class ModelError(UserError):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message, hint, kind="model")
