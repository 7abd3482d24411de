"""Sizes and durations for people: the one place that turns bytes and seconds into words.

Binary units throughout (what `df -h` and the OS file managers on Linux show), with enough
digits that a small amount never reads as zero: 3 MiB free is "3.0 MiB", not "0.00 GiB".
"""

from __future__ import annotations

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def format_size(n: int | float | None) -> str:
    """A byte count: "512 bytes", "7.8 KiB", "3.0 MiB", "350 MiB", "75.1 GiB"; "?" when unknown."""
    if n is None:
        return "?"
    sign, size = ("-" if n < 0 else ""), abs(float(n))
    if size < 1024:
        count = int(size)
        return f"{sign}{count} byte{'' if count == 1 else 's'}"
    for unit in _UNITS:
        size /= 1024
        # One decimal while it carries information; "1024.0 KiB" never appears (it is "1.0 MiB").
        if round(size, 1) < 1024 or unit == _UNITS[-1]:
            return f"{sign}{size:.1f} {unit}" if size < 100 else f"{sign}{size:.0f} {unit}"
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    """A duration: "45 s", "12 min", "3 h 05 min"."""
    seconds = int(round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
