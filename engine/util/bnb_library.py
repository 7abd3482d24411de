"""Whether bitsandbytes loaded its native library: on a GPU, its 4-bit kernels live there.

bitsandbytes imports even when its CUDA library cannot load (no binary for this CUDA version, a
missing libcudart, a trimmed install) and only fails, with a page of troubleshooting text, the first
time a kernel runs: for us, halfway through loading a model. The engine asks first (load_model on
CUDA, and diagnostics), and says it in one line.
"""

from __future__ import annotations

from pathlib import Path


def native_library() -> tuple[str, str | None, str]:
    """(backend, the loaded library's file name or None, why it did not load) for bitsandbytes here."""
    from bitsandbytes import cextension

    lib = cextension.lib
    # Plain attribute lookups only: the library object answers any unknown name with a function.
    loaded = getattr(vars(lib).get("_lib"), "_name", None)
    if loaded is not None:
        return cextension.BNB_BACKEND, Path(loaded).name, ""
    error = str(vars(lib).get("error_msg") or "").strip()  # kept by the stand-in it puts there instead
    return cextension.BNB_BACKEND, None, error.splitlines()[0] if error else "unknown reason"


def cuda_kernels_problem() -> str | None:
    """Why bitsandbytes cannot run 4-bit layers on CUDA here, in one line; None when it can."""
    backend, loaded, error = native_library()
    if loaded is not None:
        return None
    import torch

    return (
        f"bitsandbytes could not load its {backend} library for CUDA {torch.version.cuda or '?'} "
        f"(torch {torch.__version__}): {error}"
    )
