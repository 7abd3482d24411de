"""A full disk is recognised however a library says it, and becomes one `io` error."""

from __future__ import annotations

import errno

import pytest

from engine.errors import UserError
from engine.util import disk


class SafetensorError(Exception):  # what safetensors raises (not an OSError)
    pass


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"),
        OSError("8704 requested and 4320 written"),  # numpy's tofile, as gguf writes tensors
        RuntimeError(
            "[enforce fail at inline_container.cc:626] . PytorchStreamWriter failed writing file "
            "data/3: file write failed"
        ),
    ],
)
def test_disk_full_in_every_dialect(exc):
    assert disk.disk_full(exc)
    error = disk.io_error(exc, "the export to /x/y.gguf")
    assert error.kind == "io" and "disk is full" in error.message and "/x/y.gguf" in error.message
    assert "Free some space" in error.hint


def test_disk_full_through_a_chained_exception():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("saving failed") from inner
    except RuntimeError as outer:
        assert disk.disk_full(outer)


def test_other_errors():
    assert not disk.disk_full(ValueError("bad value"))
    assert disk.io_error(ValueError("bad value"), "x") is None
    assert disk.io_error(UserError("already said"), "x") is None
    denied = disk.io_error(PermissionError(errno.EACCES, "Permission denied", "/x/out.gguf"), "the export")
    assert denied.kind == "io"
    assert denied.message == "The export could not be written: Permission denied (/x/out.gguf)."


def test_free_space_is_said_in_sensible_units(tmp_path, monkeypatch):
    monkeypatch.setattr(disk.shutil, "disk_usage", lambda _p: type("U", (), {"free": 3 * 2**20})())
    with pytest.raises(UserError) as info:
        disk.check_free_space(tmp_path, 40 * 2**20, "the GGUF file")
    assert info.value.kind == "io"
    assert "about 40.0 MiB needed, 3.0 MiB free" in info.value.message
