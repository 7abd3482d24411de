"""Custom model code runs only with consent recorded in this workspace's library (issue 18 item 22).

A run folder whose config.toml said `trust_remote_code = true` for a model folder with custom
code made `export RUN` execute that code, although the library had no consent for the folder.
A config file may come from someone else; only the library (or `--allow-remote-code` typed by
the user) can allow it. transformers' module cache stays inside Whetstone's data folder.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

import engine.models.library as library_module
from engine.cli.main import main
from engine.config import ModelConfig, config_to_toml
from engine.errors import ModelError
from engine.models.library import ModelLibrary
from engine.models.loading import inspect_model_folder, trust_remote_code
from engine.util.files import whetstone_home

CONFIG_CODE = """import pathlib
pathlib.Path({marker!r}).write_text("custom code ran")
from transformers import LlamaConfig
class CustomConfig(LlamaConfig):
    model_type = "whetstone_custom"
"""
MODEL_CODE = """from transformers import LlamaForCausalLM
from .configuration_custom import CustomConfig
class CustomForCausalLM(LlamaForCausalLM):
    config_class = CustomConfig
"""


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("WHETSTONE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(library_module, "_PROCESS_CONSENT", threading.Event())  # no --allow-remote-code yet
    return tmp_path / "home"


@pytest.fixture
def custom(tiny_model_dir, tmp_path) -> tuple[Path, Path]:
    """A model folder whose config needs its own code; that code writes a marker file when run."""
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "custom"))
    marker = tmp_path / "CUSTOM-CODE-RAN"
    (folder / "configuration_custom.py").write_text(CONFIG_CODE.format(marker=str(marker)))
    (folder / "modeling_custom.py").write_text(MODEL_CODE)
    config = json.loads((folder / "config.json").read_text())
    config.update(
        model_type="whetstone_custom",
        architectures=["CustomForCausalLM"],
        auto_map={
            "AutoConfig": "configuration_custom.CustomConfig",
            "AutoModelForCausalLM": "modeling_custom.CustomForCausalLM",
        },
    )
    (folder / "config.json").write_text(json.dumps(config))
    return folder, marker


def _foreign_run(short_run: Path, model: Path, tmp_path: Path) -> Path:
    """A copy of a finished run whose config.toml names `model` and claims trust_remote_code = true."""
    from engine.config import load_config

    run = Path(shutil.copytree(short_run, tmp_path / "foreign-run"))
    config = load_config(run / "config.toml").with_overrides(
        {"model.path": str(model), "model.trust_remote_code": True}
    )
    (run / "config.toml").write_text(config_to_toml(config))
    return run


def test_export_of_a_foreign_run_never_runs_custom_code(home, custom, short_run, tmp_path, capsys):
    folder, marker = custom
    run = _foreign_run(short_run, folder, tmp_path)
    assert main(["export", str(run), "--merged", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "needs its own Python code" in err and "library has not allowed it" in err and str(folder) in err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_train_resume_and_project_configs_cannot_consent(home, custom, facts_file, tmp_path, capsys):
    folder, marker = custom
    cfg = ModelConfig(path=str(folder), trust_remote_code=True)  # what a foreign config.toml says
    with pytest.raises(ModelError, match="library has not allowed it"):
        inspect_model_folder(cfg)
    config_file = tmp_path / "foreign.toml"
    from engine.config import RunConfig

    config_file.write_text(
        config_to_toml(
            RunConfig().with_overrides(
                {"model.path": str(folder), "model.trust_remote_code": True, "data.path": str(facts_file)}
            )
        )
    )
    assert main(["train", "--config", str(config_file), "--output", str(tmp_path / "run"), "--quiet"]) == 2
    assert "library has not allowed it" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_consent_recorded_in_the_library_allows_it(home, custom):
    folder, _marker = custom
    cfg = ModelConfig(path=str(folder))  # the config's own flag does not matter either way
    ModelLibrary().set_remote_code_allowed(folder, True)
    assert trust_remote_code(inspect_model_folder(cfg))
    ModelLibrary().set_remote_code_allowed(folder, False)
    with pytest.raises(ModelError, match="has not allowed it") as info:
        inspect_model_folder(cfg)
    assert f"whetstone-engine models allow-remote-code {folder}" in info.value.hint


def test_a_builtin_model_type_is_never_loaded_with_remote_code(home, tiny_model_dir, tmp_path):
    # auto_map next to a model_type transformers knows: the built-in class, never the folder's code.
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "llama-with-auto-map"))
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.Evil"}
    (folder / "config.json").write_text(json.dumps(config))
    assert not trust_remote_code(inspect_model_folder(ModelConfig(path=str(folder), trust_remote_code=True)))


def test_allow_remote_code_flag_is_explicit_consent_for_this_command(home, custom, capsys):
    folder, marker = custom
    assert (
        main(
            [
                "generate",
                "--model",
                str(folder),
                "--prompt",
                "hi",
                "--max-new-tokens",
                "1",
                "--allow-remote-code",
            ]
        )
        == 0
    )
    assert marker.read_text() == "custom code ran"
    assert not ModelLibrary().remote_code_allowed(folder)  # nothing recorded for later commands


def test_transformers_module_cache_is_inside_the_whetstone_folder():
    import transformers.utils.hub as hub

    cache = Path(os.environ["HF_MODULES_CACHE"])
    assert cache == whetstone_home() / "cache" / "hf_modules" and Path(hub.HF_MODULES_CACHE) == cache
