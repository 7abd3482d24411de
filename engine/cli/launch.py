"""How to start `whetstone-engine` as a child process, from source or from the bundled app.

From source (a virtual environment) the engine is `python -m engine.cli`. In the
PyInstaller bundle `sys.executable` is the `whetstone` program itself, so the engine is
the `whetstone-engine` program next to it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from engine.util.cpu_allocator import with_tcmalloc


def engine_command(*args: str) -> list[str]:
    """The argv that runs `whetstone-engine ARGS` with this installation's Python and packages."""
    if getattr(sys, "frozen", False):
        name = "whetstone-engine.exe" if sys.platform == "win32" else "whetstone-engine"
        return [str(Path(sys.executable).with_name(name)), *args]
    return [sys.executable, "-m", "engine.cli", *args]


def engine_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment an engine child process starts with: unbuffered output (its events are read
    line by line) and, on a Linux machine without a GPU, tcmalloc (engine.util.cpu_allocator)."""
    return with_tcmalloc({**(os.environ if base is None else base), "PYTHONUNBUFFERED": "1"})
