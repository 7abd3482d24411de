"""Run the engine's processes under tcmalloc on a Linux machine without a GPU, when the system has it.

glibc's malloc keeps the memory of freed activations in its heap: a CPU training step's peak RSS
was 1.2-3.3x the memory its tensors held (demo model, fit check, 2 steps: 6.0 GiB against 1.8 GiB
under tcmalloc at batch 4 x 1024 tokens with checkpointing, 4.4 against 3.3 GiB at the demo's batch
4 x 256), at the same speed; under tcmalloc the memory estimate is within 15 % of the peak. The
allocator must be chosen when a process starts (LD_PRELOAD), so the app starts its engine children
with it (engine.cli.launch.engine_environment) and `whetstone-engine` run from a shell starts itself
again once with it (engine.cli.main.run_as_program).

Left alone: machines with an NVIDIA driver (the GPU holds the training memory there, and nobody has
measured tcmalloc with CUDA here), other systems, and WHETSTONE_CPU_ALLOCATOR=system (glibc's malloc).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

OPT_OUT = "WHETSTONE_CPU_ALLOCATOR"  # "system": keep the C library's malloc
# gperftools' allocator: Debian/Ubuntu libtcmalloc-minimal4 (scripts/system-deps installs it), Fedora
# gperftools-libs. jemalloc gave the same memory but 1.5x slower steps at 4 x 1024 tokens.
LIBRARIES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")


def _library_dirs() -> list[Path]:
    multiarch = getattr(sys.implementation, "_multiarch", "")
    dirs = [f"/usr/lib/{multiarch}", f"/lib/{multiarch}"] if multiarch else []
    return [Path(d) for d in (*dirs, "/usr/lib64", "/usr/lib", "/lib64", "/lib")]


def tcmalloc_library(env: dict[str, str] | None = None) -> str | None:
    """The tcmalloc library to preload for a CPU engine process here, or None (see the module doc)."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux") or env.get(OPT_OUT, "").strip().lower() == "system":
        return None
    if NVIDIA_DRIVER.exists():
        return None
    for folder in _library_dirs():
        for name in LIBRARIES:
            if (folder / name).is_file():
                return str(folder / name)
    return None


def with_tcmalloc(env: dict[str, str]) -> dict[str, str]:
    """`env` with tcmalloc first in LD_PRELOAD where tcmalloc_library() finds it (unchanged otherwise)."""
    library = tcmalloc_library(env)
    preload = env.get("LD_PRELOAD", "")
    if library is None or library in preload.split(":"):
        return env
    return {**env, "LD_PRELOAD": f"{library}:{preload}" if preload else library}


def active_allocator() -> str:
    """ "tcmalloc" when this process runs under it, else "system" (read from the process's mappings)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "system"
    return "tcmalloc" if any(name.split(".so")[0] in maps for name in LIBRARIES) else "system"
