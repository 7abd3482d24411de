"""The model library: describing folders, the HF cache, library.toml, GGUF import and `models` CLI."""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import ModelError
from engine.models.demo import demo_gguf_path
from engine.models.library import (
    Cancelled,
    ModelLibrary,
    describe_model,
    hf_cache_model_dirs,
    import_gguf,
)

REPO = Path(__file__).resolve().parents[3]
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty Whetstone home and HF cache, so no real model leaks into a listing."""
    monkeypatch.setenv("WHETSTONE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "home"


@pytest.fixture
def model_copy(tiny_model_dir, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "tiny"))


def _remote_code_model(folder: Path) -> Path:
    config = json.loads((folder / "config.json").read_text())
    config.update(
        model_type="totally_custom", auto_map={"AutoModelForCausalLM": "modeling_custom.CustomModel"}
    )
    (folder / "config.json").write_text(json.dumps(config))
    return folder


# ---- describing a folder


def test_describe_tiny_model_counts_parameters_from_headers(tiny_model_dir):
    from safetensors import safe_open

    info = describe_model(tiny_model_dir)
    expected_params = expected_memory = 0
    with safe_open(str(tiny_model_dir / "model.safetensors"), framework="numpy") as handle:
        for name in handle.keys():
            shape = handle.get_slice(name).get_shape()
            count = math.prod(shape)
            expected_params += count
            quantized = len(shape) == 2 and "embed" not in name and "lm_head" not in name
            expected_memory += count * ((0.5 + 1 / 64 + 4 / (64 * 256)) if quantized else 2)
    assert info.parameters == expected_params
    assert abs(info.memory_4bit_bytes - expected_memory) <= 1  # the same formula, summed in another order
    assert 0 < info.memory_4bit_bytes < info.parameters * 2  # less than fp16
    assert (info.architecture, info.model_type, info.context_length) == ("LlamaForCausalLM", "llama", 256)
    assert info.has_chat_template and info.usable and info.problem is None
    assert (
        info.path == tiny_model_dir.resolve() and info.name == tiny_model_dir.name and info.source == "added"
    )
    assert info.as_dict()["path"] == str(tiny_model_dir.resolve()) and info.as_dict()["usable"] is True


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(size)


BREAKAGES = {
    "missing folder": lambda d: shutil.rmtree(d),
    "no config.json": lambda d: (d / "config.json").unlink(),
    "config is not JSON": lambda d: (d / "config.json").write_text("{not json"),
    "config is a list": lambda d: (d / "config.json").write_text("[1, 2]"),
    "no weights": lambda d: (d / "model.safetensors").unlink(),
    "pickle weights only": lambda d: (d / "model.safetensors").rename(d / "pytorch_model.bin"),
    "no tokenizer": lambda d: [(d / n).unlink(missing_ok=True) for n in TOKENIZER_FILES],
    "header length past the end": lambda d: _truncate(d / "model.safetensors", 100),
    "shorter than 8 bytes": lambda d: _truncate(d / "model.safetensors", 5),
    "tensor data truncated": lambda d: _truncate(
        d / "model.safetensors", (d / "model.safetensors").stat().st_size - 10
    ),
    "missing shard": lambda d: (d / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a.weight": "model-00001-of-00002.safetensors"}})
    ),
    "adapter, not a model": lambda d: (d / "config.json").rename(d / "adapter_config.json"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_broken_folders_get_a_problem_and_a_hint(model_copy, breakage):
    BREAKAGES[breakage](model_copy)
    info = describe_model(model_copy)  # never raises
    assert info.problem and "\n" not in info.problem and info.hint
    assert not info.usable


def test_a_gguf_file_given_as_folder_says_to_import_it(tmp_path):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + bytes(20))
    info = describe_model(gguf)
    assert "is a file" in info.problem and "import-gguf" in info.hint


def test_an_unreadable_folder_is_described_not_raised(model_copy, monkeypatch):
    import engine.models.info

    def refuse(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(engine.models.info, "check_model_folder", refuse)
    info = describe_model(model_copy)
    assert info.problem.endswith("cannot be read: Permission denied.") and not info.usable


def test_describe_imports_neither_torch_nor_transformers(tiny_model_dir):
    code = (
        "import sys; from engine.models.library import describe_model; "
        f"assert describe_model({str(tiny_model_dir)!r}).usable; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_builtin_model_types_match_transformers():
    from transformers import CONFIG_MAPPING

    from engine.models.types import builtin_model_types

    assert builtin_model_types() == frozenset(CONFIG_MAPPING.keys())


def test_remote_code_needs_recorded_consent(model_copy, home):
    _remote_code_model(model_copy)
    info = describe_model(model_copy)
    assert info.needs_remote_code and info.problem is None and not info.usable
    library = ModelLibrary(home)
    assert not library.add_folder(model_copy).usable  # recorded, waiting for consent
    library.set_remote_code_allowed(model_copy, True)
    assert ModelLibrary(home).remote_code_allowed(model_copy)
    assert [i.usable for i in ModelLibrary(home).scan() if i.source == "added"] == [True]
    library.set_remote_code_allowed(model_copy, False)
    assert [i.usable for i in library.scan() if i.source == "added"] == [False]


# ---- the HF cache


def _cache_snapshot(hub: Path, repo: str, commit: str, model: Path | None) -> Path:
    """A snapshot laid out like huggingface_hub: files are symlinks into blobs/."""
    root = hub / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (root / "blobs").mkdir(exist_ok=True)
    for file in model.iterdir() if model else []:
        blob = root / "blobs" / f"{commit}-{file.name}"
        shutil.copy(file, blob)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    return snapshot


def test_hf_cache_scan_follows_refs_main(tiny_model_dir, home, tmp_path):
    hub = tmp_path / "hub"
    main = _cache_snapshot(hub, "org/tiny", "aaa", tiny_model_dir)
    newer = _cache_snapshot(hub, "org/tiny", "bbb", tiny_model_dir)
    os.utime(newer, (main.stat().st_mtime + 100,) * 2)
    (main.parent.parent / "refs").mkdir()
    (main.parent.parent / "refs" / "main").write_text("aaa\n")
    solo_old = _cache_snapshot(hub, "solo", "c1", tiny_model_dir)
    solo_new = _cache_snapshot(hub, "solo", "c2", tiny_model_dir)
    os.utime(solo_old, (solo_new.stat().st_mtime - 100,) * 2)
    _cache_snapshot(hub, "org/no-config", "ddd", None)
    (hub / "datasets--org--data" / "snapshots" / "e").mkdir(parents=True)

    assert hf_cache_model_dirs() == [("org/tiny", main), ("solo", solo_new)]
    cached = [i for i in ModelLibrary(home).scan() if i.source == "hf-cache"]
    assert [(i.name, i.usable) for i in cached] == [("org/tiny", True), ("solo", True)]
    assert cached[0].parameters == describe_model(tiny_model_dir).parameters


# ---- library.toml


def test_library_round_trip_and_listing_order(model_copy, home, tiny_model_dir):
    (home / "models" / "Zeta").mkdir(parents=True)
    shutil.copytree(tiny_model_dir, home / "models" / "alpha")
    (home / "models" / ".beta.partial").mkdir()  # an import in progress: not listed
    library = ModelLibrary(home)
    assert library.add_folder(model_copy).source == "added"
    library.add_folder(model_copy)  # twice: recorded once
    assert ModelLibrary(home).added_folders() == [model_copy.resolve()]
    infos = ModelLibrary(home).scan()
    assert [(i.source, i.name) for i in infos] == [
        ("demo", "SmolLM2-135M-Instruct"),
        ("imported", "alpha"),
        ("added", "tiny"),
        ("imported", "Zeta"),
    ]
    assert infos[0].problem == "The demo model has not been prepared yet." and "first use" in infos[0].hint
    assert infos[3].problem  # an empty folder is listed with its problem, not hidden
    library.remove(model_copy)
    assert ModelLibrary(home).added_folders() == [] and (model_copy / "config.json").is_file()


@pytest.mark.parametrize("content", ["added = [", "added = [1, 2]", "added = 'x'", "\xff\xfe"])
def test_corrupt_library_toml_is_set_aside_not_destroyed(home, model_copy, content):
    home.mkdir(parents=True)
    (home / "library.toml").write_text(content, encoding="utf-8", errors="surrogateescape")
    library = ModelLibrary(home)
    assert [i.source for i in library.scan()] == ["demo"]
    assert library.set_aside is not None and library.set_aside.read_text(errors="replace")
    library.add_folder(model_copy)  # the library works again from empty
    assert ModelLibrary(home).added_folders() == [model_copy.resolve()]


def test_adding_a_bad_folder_raises_and_records_nothing(home, model_copy):
    (model_copy / "config.json").unlink()
    with pytest.raises(ModelError, match="config.json is missing"):
        ModelLibrary(home).add_folder(model_copy)
    assert not (home / "library.toml").exists()


def test_scan_reports_progress_and_can_be_cancelled(home, tiny_model_dir):
    for name in ("a", "b", "c"):
        shutil.copytree(tiny_model_dir, home / "models" / name)
    seen = []
    infos = ModelLibrary(home).scan(progress=lambda done, total, name: seen.append((done, total)))
    assert len(infos) == 4 and seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    calls = []
    with pytest.raises(Cancelled):
        ModelLibrary(home).scan(progress=lambda *a: calls.append(a), cancel=lambda: len(calls) >= 2)
    assert len(calls) == 2


# ---- GGUF import: checks (fast)


def _gguf_bytes(architecture: str) -> bytes:
    key, value = b"general.architecture", architecture.encode()
    return (
        b"GGUF"
        + struct.pack("<IQQ", 3, 0, 1)
        + struct.pack("<Q", len(key))
        + key
        + struct.pack("<IQ", 8, len(value))
        + value
    )


def test_gguf_checks_fail_fast_with_clear_messages(tmp_path, home):
    fake = tmp_path / "notes.gguf"
    fake.write_text("these are my notes, not a model")
    with pytest.raises(ModelError, match="not a usable GGUF file: it does not start with the GGUF signature"):
        import_gguf(fake, home=home)
    with pytest.raises(ModelError, match="does not exist"):
        import_gguf(tmp_path / "absent.gguf", home=home)
    with pytest.raises(ModelError, match="not a file"):
        import_gguf(tmp_path, home=home)
    bert = tmp_path / "bert.gguf"
    bert.write_bytes(_gguf_bytes("bert"))
    with pytest.raises(ModelError, match="'bert' model, which cannot be converted") as info:
        import_gguf(bert, home=home)
    assert "llama" in info.value.hint
    header_cut = tmp_path / "cut.gguf"
    header_cut.write_bytes(_gguf_bytes("llama")[:-3])
    with pytest.raises(ModelError, match="a metadata string runs past the end of the file"):
        import_gguf(header_cut, home=home)
    header_cut.write_bytes(_gguf_bytes("llama")[:10])
    with pytest.raises(ModelError, match="ends in the middle of its header"):
        import_gguf(header_cut, home=home)
    assert not (home / "models").exists()


def test_truncated_gguf_and_name_clash_are_refused_before_converting(tmp_path, home):
    real = demo_gguf_path()
    cut = tmp_path / "cut.gguf"
    with open(real, "rb") as src, open(cut, "wb") as dst:
        dst.write(src.read(real.stat().st_size - 4096))
    with pytest.raises(ModelError, match="truncated"):
        import_gguf(cut, home=home)
    (home / "models" / "taken").mkdir(parents=True)
    with pytest.raises(ModelError, match="already exists") as info:
        import_gguf(real, home=home, name="taken")
    assert "another name" in info.value.hint
    for bad in ("", ".hidden", "a/b", "../up"):
        with pytest.raises(ModelError, match="cannot be used as a model name"):
            import_gguf(real, home=home, name=bad)


def test_gguf_import_cancelled_leaves_nothing(home):
    with pytest.raises(Cancelled):
        import_gguf(demo_gguf_path(), home=home, name="x", cancel=lambda: True)
    assert list((home / "models").glob("*")) == []  # not even a hidden staging folder


# ---- the `models` CLI


def test_models_cli_add_list_allow_remove(home, model_copy, capsys):
    from engine.cli.main import main

    assert main(["models", "add", str(model_copy / "nope")]) == 2
    assert capsys.readouterr().err.startswith("error: Model folder")
    _remote_code_model(model_copy)
    assert main(["models", "add", str(model_copy)]) == 0
    assert "allow-remote-code" in capsys.readouterr().out
    assert main(["models", "allow-remote-code", str(model_copy)]) == 0
    assert "may run its own Python code" in capsys.readouterr().out
    assert main(["models", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    added = [m for m in listed if m["source"] == "added"]
    assert added[0]["path"] == str(model_copy.resolve()) and added[0]["usable"] is True
    assert main(["models", "list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["NAME", "SOURCE", "ARCHITECTURE"] and "own code allowed" in table[-1]
    assert main(["models", "remove", str(model_copy)]) == 0
    assert main(["models", "remove", str(model_copy)]) == 2
    assert "not a folder added" in capsys.readouterr().err


# `models import-gguf --progress-json` is tested end to end from the GUI on a GGUF of the tiny
# model (tests/app/library/test_model_library.py); the shipped demo GGUF, written by llama.cpp's own
# converter, goes through the same conversion in tests/engine/models/test_demo_model.py.
