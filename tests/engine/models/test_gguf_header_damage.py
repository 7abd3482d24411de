"""Hostile GGUF metadata is refused from the header check, exit 2 (issue 18 item 15).

A mistyped `general.alignment` (a string), arrays nested very deeply, or a huge array as the
last key ended `models import-gguf` with TypeError, RecursionError or a struct error, exit 1.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.errors import ModelError
from engine.models.demo import demo_gguf_path
from engine.models.gguf_import import check_gguf, read_gguf_header

UINT32, STRING, ARRAY = 4, 8, 9


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def _kv(key: str, kind: int, payload: bytes) -> bytes:
    return _string(key) + struct.pack("<I", kind) + payload


def _gguf(path: Path, *kvs: bytes) -> Path:
    items = [_kv("general.architecture", STRING, _string("llama")), *kvs]
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(items)) + b"".join(items))
    return path


def _nested(depth: int) -> bytes:
    inner = struct.pack("<IQ", UINT32, 0)
    for _ in range(depth):
        inner = struct.pack("<IQ", ARRAY, 1) + inner
    return inner


CASES = {
    "alignment as a string": (
        lambda: _kv("general.alignment", STRING, _string("abc")),
        "general.alignment is 'abc'",
    ),
    "alignment zero": (
        lambda: _kv("general.alignment", UINT32, struct.pack("<I", 0)),
        "general.alignment is 0",
    ),
    "arrays nested 100000 deep": (lambda: _kv("x.nested", ARRAY, _nested(100_000)), "nests arrays more than"),
    "huge array of numbers last": (
        lambda: _kv("x.huge", ARRAY, struct.pack("<IQ", UINT32, 2**60)),
        "array runs past the end",
    ),
    "huge array of arrays last": (
        lambda: _kv("x.huge", ARRAY, struct.pack("<IQ", ARRAY, 2**60)),
        "array runs past the end",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_metadata_is_a_clear_refusal(case, tmp_path):
    make, words = CASES[case]
    file = _gguf(tmp_path / "bad.gguf", make())
    with pytest.raises(ModelError, match=words) as info:
        check_gguf(file)
    assert "not a usable GGUF file" in info.value.message


@pytest.mark.parametrize("case", list(CASES))
def test_import_gguf_cli_exits_2_with_one_line(case, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WHETSTONE_HOME", str(tmp_path / "home"))
    file = _gguf(tmp_path / "bad.gguf", CASES[case][0]())
    assert main(["models", "import-gguf", str(file), "--name", "x"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("[")]  # progress
    assert len(errors) == 1 and errors[0].startswith("error: bad.gguf is not a usable GGUF file")
    assert not (tmp_path / "home" / "models" / "x").exists()


def test_shallow_arrays_and_a_proper_alignment_still_pass(tmp_path):
    file = _gguf(
        tmp_path / "ok.gguf",
        _kv("general.alignment", UINT32, struct.pack("<I", 64)),
        _kv("x.pairs", ARRAY, _nested(3)),
    )
    assert read_gguf_header(file)["architecture"] == "llama"


def test_the_demo_gguf_passes_the_stricter_header_check():
    assert read_gguf_header(demo_gguf_path())["tensors"] > 0
