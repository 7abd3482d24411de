"""Whether Triton can build kernels on this machine: Liger's fused kernels and flex attention need it.

The first time a Triton kernel runs, Triton compiles a small C launcher for it with the system's C
compiler ($CC, else gcc, else clang: triton/runtime/build.py) against Python's headers (Python.h in
sysconfig's include folder). A workstation without build tools, a venv made from a Python without
its -dev package, or a frozen app (no Python.h inside) has none of these: the first training step
would then stop with a compiler error. Checked without importing torch or Triton, so the setup
screen's memory estimate can ask too.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import sys
import sysconfig
from pathlib import Path


def build_tools_hint() -> str:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return f"on Debian/Ubuntu: sudo apt-get install gcc python{version}-dev"


def python_include_dir() -> Path:
    """Where Triton looks for Python.h: the default scheme's include folder (as triton's build does)."""
    scheme = sysconfig.get_default_scheme()
    if scheme == "posix_local":  # Debian's scheme for /usr/local; Triton reads posix_prefix's
        scheme = "posix_prefix"
    return Path(sysconfig.get_paths(scheme=scheme)["include"])


def c_compiler() -> str | None:
    """The compiler Triton would call, if it is there: $CC, else gcc, else clang."""
    named = os.environ.get("CC")
    if named:  # Triton runs $CC as one program: "ccache gcc" is no program
        return named if shutil.which(named) else None
    return shutil.which("gcc") or shutil.which("clang")


@functools.cache  # the estimate asks on every settings change; the machine does not change mid-process
def triton_build_problem() -> str | None:
    """Why Triton cannot build its kernels here, in words for the user; None when it can."""
    if importlib.util.find_spec("triton") is None:
        return "the triton package is not installed"
    if getattr(sys, "frozen", False):
        return "the installed app carries no C compiler or Python headers for Triton"
    hint = build_tools_hint()
    if c_compiler() is None:
        named = os.environ.get("CC")
        missing = f"CC={named!r} names no program on PATH" if named else "no gcc or clang is on PATH"
        return f"Triton builds its kernels with a C compiler, and {missing} ({hint})"
    header = python_include_dir() / "Python.h"
    if not header.is_file():
        return f"Triton builds its kernels against Python's headers, and {header} is missing ({hint})"
    return None
