"""Helpers for whetstone.spec: drop files from the bundle without leaving broken pieces behind.

PyInstaller's hooks collect some packages wholesale (torch's C++ tests, every bitsandbytes GPU
backend, every Qt plugin) and then bundle the system libraries those files link to. When the spec
drops such a file, the libraries only it needed (GTK for Qt's GTK theme plugin, libcudart for the
CUDA builds of bitsandbytes) and symbolic links to dropped files would stay; these helpers find them.
Build-time only; stdlib only.
"""

from __future__ import annotations

import os
import struct


def elf_needed(path: str) -> tuple[str, ...]:
    """The DT_NEEDED names of a 64-bit little-endian ELF file; () for anything else."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                return ()
            (shoff,) = struct.unpack_from("<Q", head, 0x28)
            shentsize, shnum = struct.unpack_from("<HH", head, 0x3A)
            f.seek(shoff)
            sections = [struct.unpack_from("<IIQQQQIIQQ", f.read(shentsize)) for _ in range(shnum)]
            for _name, kind, _flags, _addr, offset, size, link, *_rest in sections:
                if kind != 6:  # SHT_DYNAMIC; its sh_link is the string table (.dynstr)
                    continue
                f.seek(offset)
                dynamic = f.read(size)
                f.seek(sections[link][4])
                strings = f.read(sections[link][5])
                names = []
                for pos in range(0, len(dynamic) - 15, 16):
                    tag, value = struct.unpack_from("<qQ", dynamic, pos)
                    if tag == 0:  # DT_NULL
                        break
                    if tag == 1:  # DT_NEEDED
                        names.append(strings[value : strings.index(b"\0", value)].decode())
                return tuple(names)
    except (OSError, struct.error, ValueError, IndexError):
        return ()
    return ()


def orphaned_libraries(kept: list[tuple], dropped: list[tuple]) -> set[str]:
    """Destination names of kept binaries that only dropped binaries link to (ELF only).

    A library counts as needed when a kept binary that no dropped one needs (an extension
    module, a plugin, a program: something loaded for its own sake) reaches it through DT_NEEDED.
    """
    needed = {e[0]: elf_needed(e[1]) for e in kept + dropped}
    by_name: dict[str, list[str]] = {}
    for entry in kept:
        by_name.setdefault(os.path.basename(entry[0]), []).append(entry[0])

    def reach(start: list[str]) -> set[str]:
        seen: set[str] = set()
        stack = list(start)
        while stack:
            dest = stack.pop()
            if dest in seen:
                continue
            seen.add(dest)
            for name in needed.get(dest, ()):
                stack.extend(by_name.get(name, ()))
        return seen

    dropped_dests = [e[0] for e in dropped]
    candidates = reach(dropped_dests) - set(dropped_dests)
    roots = [e[0] for e in kept if e[0] not in candidates]
    return candidates - reach(roots)


def without_broken_symlinks(entries: list[tuple], others: list[tuple] = ()) -> list[tuple]:
    """Drop SYMLINK entries (dest, relative target, "SYMLINK") whose target is in neither list."""
    entries = list(entries)
    while True:
        present = {e[0].replace("\\", "/") for e in [*entries, *others]}
        keep = [
            e
            for e in entries
            if e[2] != "SYMLINK"
            or os.path.normpath(os.path.join(os.path.dirname(e[0]), e[1])).replace("\\", "/") in present
        ]
        if len(keep) == len(entries):
            return keep
        entries = keep
