"""Damaged weights are a clear error (exit 2) wherever a model is loaded, and config.json is read once.

Issue 18 item 10: a safetensors header length of 2**60, a truncated file or a junk header ended
as "This is a bug in Whetstone" in `train` and `generate` and left a failed run folder.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.config import ModelConfig
from engine.errors import ModelError
from engine.models.folder import ModelFolder
from engine.models.info import describe_model
from engine.models.loading import inspect_model_folder


def _damage(folder: Path, kind: str) -> Path:
    file = folder / "model.safetensors"
    data = file.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    if kind == "huge header length":
        data = struct.pack("<Q", 2**60) + data[8:]
    elif kind == "truncated":
        data = data[: len(data) // 2]
    elif kind == "junk header":
        data = data[:8] + b"x" * length + data[8 + length :]
    file.write_bytes(data)
    return folder


DAMAGE = ("huge header length", "truncated", "junk header")


@pytest.fixture(params=DAMAGE)
def damaged(request, tiny_model_dir, tmp_path) -> Path:
    return _damage(Path(shutil.copytree(tiny_model_dir, tmp_path / "model")), request.param)


def test_generate_with_damaged_weights_is_one_error_line(damaged, capsys):
    assert main(["generate", "--model", str(damaged), "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: model.safetensors in ") and "is damaged" in err
    assert err.count("\n") == 1 and "bug" not in err


def test_train_with_damaged_weights_makes_no_run_folder(damaged, facts_file, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--model",
                str(damaged),
                "--data",
                str(facts_file),
                "--output",
                str(run),
                "--max-steps",
                "1",
                "--quiet",
            ]
        )
        == 2
    )
    assert "is damaged" in capsys.readouterr().err
    assert not run.exists()


def test_every_loader_checks_the_headers(damaged):
    # inspect_model_folder is what training, chat, the chat server, export and the fit check call first.
    with pytest.raises(ModelError, match="is damaged"):
        inspect_model_folder(ModelConfig(path=str(damaged)))
    info = describe_model(damaged)  # the library's `models add` says the same
    assert "is damaged" in info.problem and not info.usable


def test_a_safetensors_header_that_is_not_an_object_of_entries_is_damage(tiny_model_dir, tmp_path):
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    header = json.dumps({"w": "not an entry"}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(ModelError, match="has an invalid entry"):
        ModelFolder.open(folder)


def test_config_json_is_parsed_once_per_folder(tiny_model_dir, monkeypatch):
    import engine.models.folder as folder_module

    reads = []
    real = folder_module.read_json_object
    monkeypatch.setattr(
        folder_module, "read_json_object", lambda file, *a: reads.append(file.name) or real(file, *a)
    )
    info = describe_model(tiny_model_dir)
    assert info.usable and info.context_length == 256 and info.architecture == "LlamaForCausalLM"
    assert reads == ["config.json"]


def test_gguf_export_reads_the_config_through_the_model_folder(tiny_model_dir, tmp_path):
    from engine.export.gguf_write import _read_config

    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    assert _read_config(folder)["model_type"] == "llama"
    (folder / "config.json").write_text("[1, 2]")
    with pytest.raises(ModelError, match="config.json cannot be read: not a JSON object"):
        _read_config(folder)
