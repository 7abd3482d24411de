"""Stop and Pause reach the engine whatever sits at RUN_DIR/STOP, and on a full disk."""

from __future__ import annotations

import errno
import os

import pytest

from engine.runs import state
from engine.training.stop import StopRequest, read_stop_word


def test_a_stop_folder_already_asks_for_a_stop(tmp_path):
    (tmp_path / "STOP").mkdir()
    state.request_stop(tmp_path, pause=True)  # raised IsADirectoryError before
    assert (tmp_path / "STOP").is_dir()
    assert StopRequest(tmp_path / "STOP").requested


def test_a_fifo_is_left_alone_and_still_asks_for_a_stop(tmp_path):
    os.mkfifo(tmp_path / "STOP")
    state.request_stop(tmp_path)
    assert StopRequest(tmp_path / "STOP").requested


def test_pause_writes_its_word(tmp_path):
    state.request_stop(tmp_path, pause=True)
    assert read_stop_word(tmp_path / "STOP") == "pause"


def test_a_full_disk_still_gets_a_stop_request_through(tmp_path, monkeypatch):
    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(state, "atomic_write_text", full)
    state.request_stop(tmp_path)
    assert (tmp_path / "STOP").is_file() and StopRequest(tmp_path / "STOP").requested


def test_other_write_errors_are_not_hidden(tmp_path, monkeypatch):
    def denied(*_args, **_kwargs):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(state, "atomic_write_text", denied)
    with pytest.raises(OSError):
        state.request_stop(tmp_path)
