"""What a bug report needs to know about this machine and installation.

`collect()` imports torch and bitsandbytes (seconds on a cold start): call it off the UI
thread. Every probe has its own guard, so a broken CUDA driver or a missing library shows
up as an "error: ..." value in the report instead of taking the report down with it.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.offline import OFFLINE_ENV
from engine.util.units import format_size

# Distribution name(s) per library; the first one installed wins.
LIBRARIES = {
    "transformers": ("transformers",),
    "peft": ("peft",),
    "bitsandbytes": ("bitsandbytes",),
    "accelerate": ("accelerate",),
    "datasets": ("datasets",),
    "gguf": ("gguf",),
    "trl": ("trl",),
    "liger_kernel": ("liger-kernel",),  # training.fused_kernels on CUDA
    "triton": ("triton",),
    "pyside6": ("PySide6", "PySide6-Essentials"),
}


def _probe(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:  # a report of a broken machine must still be a report
        return f"error: {type(exc).__name__}: {exc}"


def _version(*names: str) -> str:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"


def _whetstone_version() -> str:
    version = _version("whetstone")
    if version == "not installed":  # a frozen app may carry no distribution metadata
        import engine

        version = f"{engine.__version__} (no package metadata)"
    return version


def _cpuinfo() -> dict[str, str]:
    """The first processor's block of /proc/cpuinfo (Linux); empty elsewhere."""
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return {}
    info = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def _cpu_name() -> str:
    info = _cpuinfo()
    return info.get("model name") or info.get("Model") or platform.processor() or platform.machine()


def _avx512_bf16() -> bool | str:
    info = _cpuinfo()
    if not info:
        return "unknown (no /proc/cpuinfo)"
    # bitsandbytes repacks 4-bit weights on these CPUs; see DESIGN.md "Known hazards".
    return "avx512_bf16" in (info.get("flags") or info.get("Features") or "").split()


def _memory_bytes() -> int:
    import psutil

    return psutil.virtual_memory().total


def _torch() -> dict[str, Any]:
    import torch

    return {
        "torch_version": torch.__version__,
        "cuda_available": _probe(torch.cuda.is_available),
        "cuda_version": torch.version.cuda or "none (CPU build of torch)",
        "gpus": _probe(_gpus),
    }


def _gpus() -> list[dict[str, Any]]:
    import torch

    gpus = []
    for index in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        gpu: dict[str, Any] = {"name": _probe(lambda i=index: torch.cuda.get_device_name(i))}
        memory = _probe(lambda i=index: torch.cuda.mem_get_info(i))
        if isinstance(memory, str):  # the probe failed: keep the reason, still list the GPU
            memory = (memory, _probe(lambda i=index: torch.cuda.get_device_properties(i).total_memory))
        free, total = memory
        gpu.update(
            total_bytes=total,
            free_bytes=free,
            capability=_probe(lambda i=index: ".".join(map(str, torch.cuda.get_device_capability(i)))),
        )
        gpus.append(gpu)
    return gpus


def _bitsandbytes_backend() -> str:
    from engine.util.bnb_library import native_library

    backend, loaded, error = native_library()
    if loaded is None:
        # bitsandbytes 0.50 falls back to pure-torch kernels on CPU; on CUDA this is a broken install.
        return f"{backend} (native library not loaded: {error})"
    return f"{backend} ({loaded})"


def _engine_allocator() -> str:
    """The malloc the engine's processes get here (engine.util.cpu_allocator)."""
    from engine.util.cpu_allocator import OPT_OUT, tcmalloc_library

    library = tcmalloc_library()
    return f"tcmalloc ({library}; {OPT_OUT}=system turns it off)" if library else "system (the C library's)"


def _triton_build() -> str:
    """Whether Triton (Liger's kernels, flex attention on CUDA) can build kernels here."""
    from engine.util.triton_build import triton_build_problem

    return triton_build_problem() or "ok (a C compiler and Python's headers are there)"


def collect() -> dict[str, Any]:
    """Versions, devices and settings, one flat key per fact (values are JSON-friendly)."""
    from engine.util.files import whetstone_home

    report: dict[str, Any] = {
        "whetstone_version": _probe(_whetstone_version),
        "python_version": sys.version.split()[0],
        "python_executable": sys.executable,
        "platform": _probe(platform.platform),
    }
    torch_info = _probe(_torch)
    if isinstance(torch_info, str):  # torch itself failed to import: every torch fact says why
        torch_info = dict.fromkeys(("torch_version", "cuda_available", "cuda_version", "gpus"), torch_info)
    report.update(torch_info)
    report.update(
        cpu=_probe(_cpu_name),
        cpu_avx512_bf16=_probe(_avx512_bf16),
        cpu_count=os.cpu_count(),
        memory_bytes=_probe(_memory_bytes),
        engine_cpu_allocator=_probe(_engine_allocator),
    )
    report.update({f"{lib}_version": _version(*names) for lib, names in LIBRARIES.items()})
    report["bitsandbytes_backend"] = _probe(_bitsandbytes_backend)
    report["triton_build"] = _probe(_triton_build)
    report["offline_env"] = {key: os.environ.get(key) for key in OFFLINE_ENV}
    report["whetstone_home"] = _probe(lambda: str(whetstone_home()))
    return report


def _gib(value: Any) -> str:
    return format_size(value) if isinstance(value, int | float) else str(value)


def _gpu_line(gpu: dict[str, Any]) -> str:
    return (
        f"{gpu.get('name')} ({_gib(gpu.get('total_bytes'))} total, {_gib(gpu.get('free_bytes'))} free, "
        f"compute capability {gpu.get('capability')})"
    )


def _value(key: str, value: Any) -> str:
    if key == "gpus" and isinstance(value, list):
        return "; ".join(_gpu_line(g) for g in value) or "none"
    if key == "memory_bytes":
        return _gib(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={'(unset)' if v is None else v}" for k, v in value.items())
    return str(value)


def format_report(d: dict[str, Any]) -> str:
    """Plain text for a bug report: one `key: value` line per key."""
    return "\n".join(f"{key}: {' '.join(_value(key, value).split())}" for key, value in d.items())


def device_summary(d: dict[str, Any]) -> str:
    """One line for a status bar, e.g. "NVIDIA H100 80GB HBM3 · 75.1 GiB free"."""
    gpus = d.get("gpus")
    if d.get("cuda_available") is True and isinstance(gpus, list) and gpus:
        first = gpus[0]
        free = first.get("free_bytes")
        line = (
            f"{first.get('name')} · {_gib(free)} free"
            if isinstance(free, int | float)
            else str(first.get("name"))
        )
        return line + (f" (+{len(gpus) - 1} more GPU{'s' if len(gpus) > 2 else ''})" if len(gpus) > 1 else "")
    if d.get("cuda_available") is True:
        return f"CUDA GPU ({gpus})" if isinstance(gpus, str) else "CUDA GPU"
    return "CPU (no CUDA GPU)"
