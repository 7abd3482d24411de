"""Copies never copy themselves, temp folders are removed only when ours, outputs never clobber."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.errors import UserError
from engine.util import files


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


# ---- copies ------------------------------------------------------------------------------


def test_copy_into_itself_is_refused(tmp_path):
    source = tmp_path / "model"
    source.mkdir()
    (source / "weights.bin").write_bytes(b"x" * 10)
    with pytest.raises(UserError, match="inside the folder being copied"):
        files.copy_tree(source, source / "bundle" / "model")
    assert tree(source) == ["weights.bin"]  # nothing was started


def test_copy_through_a_link_back_to_an_ancestor_is_refused(tmp_path):
    source = tmp_path / "data"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "loop").symlink_to(source, target_is_directory=True)
    with pytest.raises(UserError, match="links to a folder that contains it"):
        files.copy_tree(source, tmp_path / "copy")


def test_copy_of_a_file_and_a_folder(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("a")
    (tmp_path / "d" / "a.txt").chmod(0o444)
    files.copy_tree(tmp_path / "d", tmp_path / "copy", contents_only=True)
    files.copy_tree(tmp_path / "d" / "a.txt", tmp_path / "one.txt")
    assert (tmp_path / "copy" / "a.txt").read_text() == "a" and (tmp_path / "one.txt").read_text() == "a"
    assert os.access(tmp_path / "copy" / "a.txt", os.W_OK)  # contents only: our copy stays writable


# ---- temp folders ------------------------------------------------------------------------


def test_a_folder_we_did_not_make_is_never_removed(tmp_path):
    theirs = tmp_path / ".out.partial"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not made by Whetstone") as info:
        files.make_temp_dir(theirs)
    assert info.value.kind == "io" and "Move or delete it" in info.value.hint
    files.discard_temp_dir(theirs)  # the cleanup after a failure leaves it alone too
    assert (theirs / "notes.txt").read_text() == "mine"


def test_a_leftover_of_ours_is_replaced(tmp_path):
    ours = files.make_temp_dir(tmp_path / ".out.partial")
    (ours / "half-written.bin").write_bytes(b"x")
    again = files.make_temp_dir(tmp_path / ".out.partial")
    assert tree(again) == [files.TEMP_MARKER]


def test_replace_dir_drops_the_marker_and_keeps_no_old_folder(tmp_path):
    target = tmp_path / "adapter"
    for generation in ("first", "second"):
        staging = files.make_temp_dir(tmp_path / ".adapter.partial")
        (staging / "weights").write_text(generation)
        files.replace_dir(staging, target)
    assert tree(target) == ["weights"] and (target / "weights").read_text() == "second"
    assert tree(tmp_path) == ["adapter", "adapter/weights"]


def test_replace_dir_never_removes_a_foreign_old_folder(tmp_path):
    target, old = tmp_path / "adapter", tmp_path / ".adapter.old"
    target.mkdir()
    (target / "weights").write_text("first")
    old.mkdir()
    (old / "keep").write_text("theirs")
    staging = files.make_temp_dir(tmp_path / ".adapter.partial")
    (staging / "weights").write_text("second")
    files.replace_dir(staging, target)  # the end of a long run is not failed for a stray folder
    assert (old / "keep").read_text() == "theirs" and (target / "weights").read_text() == "second"
    assert tree(tmp_path) == [".adapter.old", ".adapter.old/keep", "adapter", "adapter/weights"]


def test_a_failed_replace_keeps_the_staging_folder_ours(tmp_path, monkeypatch):
    target = tmp_path / "adapter"
    target.mkdir()
    (target / "weights").write_text("first")
    staging = files.make_temp_dir(tmp_path / ".adapter.partial")
    real = os.replace

    def fail_second(src, dst):
        if Path(src) == staging:
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(files.os, "replace", fail_second)
    with pytest.raises(OSError):
        files.replace_dir(staging, target)
    assert (target / "weights").read_text() == "first"  # the previous one is back in place
    assert files.is_temp_dir(staging)  # still marked, so the caller's cleanup removes it
    files.discard_temp_dir(staging)
    assert tree(tmp_path) == ["adapter", "adapter/weights"]


# ---- output folders and new files ----------------------------------------------------------


@pytest.mark.parametrize("folder", ["/proc/whetstone-nope", "/proc/self", "/sys"])
def test_an_output_in_a_system_folder_is_refused(folder):
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    with pytest.raises(UserError, match="system folder, not a place on a disk") as info:
        files.prepare_output_folder(Path(folder), "the GGUF file")
    assert info.value.kind == "io"


def test_an_output_under_a_file_is_refused(tmp_path):
    (tmp_path / "data.jsonl").write_text("{}")
    with pytest.raises(UserError, match="data.jsonl is not a folder"):
        files.prepare_output_folder(tmp_path / "data.jsonl" / "sub", "the GGUF file")


def test_an_output_folder_is_created_and_probed(tmp_path):
    folder = files.prepare_output_folder(tmp_path / "a" / "b", "the GGUF file")
    assert folder.is_dir() and list(folder.iterdir()) == []  # the write probe left nothing


def test_write_new_never_replaces(tmp_path):
    target = tmp_path / "Modelfile"
    files.write_new(target, b"ours")
    with pytest.raises(UserError, match="never overwrites"):
        files.write_new(target, b"again")
    assert target.read_bytes() == b"ours" and tree(tmp_path) == ["Modelfile"]  # no temp file left
