"""Run display names: a readable default from the preset, renames that persist atomically, the CLI."""

from __future__ import annotations

import os
import shutil

import pytest

from engine.cli.main import main
from engine.config import RunConfig
from engine.errors import UserError
from engine.runs.names import RUN_INFO_NAME, read_run_name, run_display_name, write_run_name
from engine.training.presets import list_presets
from engine.training.run_names import default_run_name


def preset(name: str):
    return next(p for p in list_presets() if p.name == name)


def test_default_name_is_the_nearest_preset_and_what_differs():
    presets = list_presets()
    quick = preset("Quick test").apply(RunConfig())
    assert default_run_name(quick, presets) == "Quick test"
    tuned = quick.with_overrides({"training.learning_rate": 3e-4})
    assert default_run_name(tuned, presets) == "Quick test · lr 3e-4"
    more = tuned.with_overrides({"lora.rank": 32, "training.max_steps": 100})
    assert default_run_name(more, presets) == "Quick test · rank 32 · 100 steps · lr 3e-4"
    balanced = preset("Balanced").apply(RunConfig()).with_overrides({"training.epochs": 3.0})
    assert default_run_name(balanced, presets) == "Balanced · 3 epochs"
    # Settings a preset does not set (the seed) are not part of its name.
    assert default_run_name(quick.with_overrides({"training.seed": 7}), presets) == "Quick test"


def test_a_recipe_far_from_every_preset_is_named_by_its_main_settings():
    own = RunConfig().with_overrides(
        {
            "lora.rank": 4,
            "training.learning_rate": 5e-5,
            "training.max_steps": 12,
            "data.max_length": 300,
            "training.batch_size": 1,
        }
    )
    assert default_run_name(own, list_presets()) == "Custom · rank 4 · lr 5e-5 · 12 steps"
    assert default_run_name(RunConfig(), []).startswith("Custom · rank 16 · lr 2e-4")


def test_rename_persists_atomically_and_the_folder_keeps_its_name(short_run, tmp_path, monkeypatch):
    run_dir = tmp_path / "run-20261206-212735"
    shutil.copytree(short_run, run_dir)
    before = sorted(p.name for p in run_dir.iterdir())
    assert read_run_name(run_dir) is None and run_display_name(run_dir) == "run-20261206-212735"

    assert write_run_name(run_dir, "  Quick test · lr 3e-4 ") == "Quick test · lr 3e-4"
    assert run_display_name(run_dir) == "Quick test · lr 3e-4"
    assert sorted(p.name for p in run_dir.iterdir()) == sorted([*before, RUN_INFO_NAME])
    assert run_dir.name == "run-20261206-212735" and (run_dir / "adapter" / "adapter_config.json").is_file()

    # A crash while renaming leaves the old name whole and no temporary file behind.
    def crash(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(UserError, match="could not be saved: No space left"):
        write_run_name(run_dir, "Second name")
    monkeypatch.undo()
    assert read_run_name(run_dir) == "Quick test · lr 3e-4"
    assert sorted(p.name for p in run_dir.iterdir()) == sorted([*before, RUN_INFO_NAME])

    write_run_name(run_dir, "Second name")
    assert read_run_name(run_dir) == "Second name"


@pytest.mark.parametrize("bad", ["", "   ", "two\nlines", "tab\there", "evil\u202etxt.exe", "x" * 81, None])
def test_bad_names_are_refused_with_one_clear_message(tmp_path, bad):
    with pytest.raises(UserError) as caught:
        write_run_name(tmp_path, bad)
    assert caught.value.message.startswith(("A run needs a name", "The run name is", "A run name cannot"))
    assert not (tmp_path / RUN_INFO_NAME).exists()


def test_a_damaged_name_file_falls_back_to_the_folder_name(tmp_path):
    run_dir = tmp_path / "run-1"
    run_dir.mkdir()
    for text in (
        b"not toml [",
        b"\xff\xfe",
        b"[run]\nname = 3\n",
        b'[run]\nname = "a\\u202eb"\n',
        b"[other]\n",
    ):
        (run_dir / RUN_INFO_NAME).write_bytes(text)
        assert run_display_name(run_dir) == "run-1"


@pytest.mark.slow  # a real (2-step) training run
def test_cli_names_a_run_at_train_and_renames_it_later(tiny_model_dir, facts_file, tmp_path, capsys):
    from engine.workspace import Workspace

    project = Workspace(tmp_path / "home").create_project(
        "Named", model=str(tiny_model_dir), dataset=facts_file
    )
    run_dir = project / "runs" / "run-20261206-212735"
    code = main(
        [
            "train",
            "--project",
            str(project),
            "--output",
            str(run_dir),
            "--max-steps",
            "2",
            "--save-every",
            "2",
            "--quiet",
            "--name",
            "Quick test · lr 3e-4",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert read_run_name(run_dir) == "Quick test · lr 3e-4"
    capsys.readouterr()

    assert main(["project", "show", str(project)]) == 0
    assert "run-20261206-212735 “Quick test · lr 3e-4”  done" in capsys.readouterr().out

    assert main(["runs", "rename", str(run_dir), "Longer lr"]) == 0
    assert read_run_name(run_dir) == "Longer lr" and run_dir.is_dir()
    capsys.readouterr()

    # Bad input: one `error:` line, exit 2, and the stored name untouched.
    assert main(["runs", "rename", str(run_dir), "bad\nname"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: A run name cannot contain line breaks") and err.count("\n") == 1
    assert main(["runs", "rename", str(tmp_path), "x"]) == 2
    assert "is not a run folder" in capsys.readouterr().err
    assert main(["train", "--project", str(project), "--output", str(tmp_path / "other"), "--name", ""]) == 2
    assert capsys.readouterr().err.startswith("error: A run needs a name")
    assert not (tmp_path / "other").exists()
    # A name for a folder the engine would refuse never overwrites that run's name.
    assert main(["train", "--project", str(project), "--output", str(run_dir), "--name", "Clobbered"]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert read_run_name(run_dir) == "Longer lr"


def test_a_run_of_another_method_than_sft_is_named_by_its_method_first():
    quick = preset("Quick test").apply(RunConfig())
    assert (
        default_run_name(quick.with_overrides({"training.method": "dpo"}), list_presets())
        == "DPO · Quick test"
    )
    soft = quick.with_overrides({"training.method": "prompt_tuning", "training.learning_rate": 3e-2})
    assert default_run_name(soft, list_presets()) == "Prompt tuning · Quick test · lr 0.03"
