"""Copies that would copy themselves are refused up front; typed names hide nothing; bounded numbers."""

from __future__ import annotations

import shutil

import pytest
from testkit.tiny_model import fact_rows, write_jsonl

from engine.cli.main import main


def one_error_line(capsys, argv, *words) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(("error", "internal error"))]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_a_cluster_bundle_inside_the_model_it_copies_is_refused(capsys, tiny_model_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    data = write_jsonl(tmp_path / "facts.jsonl", fact_rows(2))
    config = tmp_path / "run.toml"
    config.write_text(f'[model]\npath = "{model}"\n[data]\npath = "{data}"\n')
    before = files_under(model)
    one_error_line(
        capsys,
        ["cluster-bundle", str(config), str(model / "bundle"), "--with-model"],
        "inside the base model folder",
        "Pick a bundle folder outside it",
    )
    assert files_under(model) == before  # not one level of model/bundle/model/...


def test_a_cluster_bundle_inside_its_dataset_folder_is_refused(capsys, tiny_model_dir, tmp_path):
    data = tmp_path / "dataset"
    data.mkdir()
    (data / "dataset_info.json").write_text("{}")
    config = tmp_path / "run.toml"
    config.write_text(f'[model]\npath = "{tiny_model_dir}"\n[data]\npath = "{data}"\n')
    one_error_line(
        capsys, ["cluster-bundle", str(config), str(data / "out")], "inside the training data folder"
    )
    assert files_under(data) == ["dataset_info.json"]


def test_a_cluster_bundle_under_a_file_is_refused(capsys, tiny_model_dir, tmp_path):
    data = write_jsonl(tmp_path / "facts.jsonl", fact_rows(2))
    config = tmp_path / "run.toml"
    config.write_text(f'[model]\npath = "{tiny_model_dir}"\n[data]\npath = "{data}"\n')
    one_error_line(
        capsys, ["cluster-bundle", str(config), str(data / "bundle")], "facts.jsonl is not a folder"
    )


def test_a_project_cannot_copy_the_workspace_that_holds_it(capsys, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("WHETSTONE_HOME", str(home))
    assert main(["project", "create", "First"]) == 0
    capsys.readouterr()
    before = files_under(home)
    for data in (home, home / "projects"):
        one_error_line(capsys, ["project", "create", "Loop", "--data", str(data)], "holds this workspace")
    assert files_under(home) == before


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("two\nlines", ["U+000A"]),
        ("con", ["reserves for devices"]),
        ("NUL.gguf", ["reserves for devices"]),
        ("abc\u202egguf.exe", ["U+202E", "RIGHT-TO-LEFT OVERRIDE"]),
    ],
)
def test_import_gguf_refuses_names_that_hide_or_trip(capsys, tmp_path, monkeypatch, name, words):
    from engine.models.demo import demo_gguf_path

    monkeypatch.setenv("WHETSTONE_HOME", str(tmp_path))
    one_error_line(
        capsys,
        ["models", "import-gguf", str(demo_gguf_path()), "--name", name],
        "cannot be used as a model name",
        *words,
    )
    assert not (tmp_path / "models").exists() or files_under(tmp_path / "models") == []


def test_project_names_refuse_bidi_controls(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("WHETSTONE_HOME", str(tmp_path))
    one_error_line(capsys, ["project", "create", "report\u202efdp.exe"], "U+202E", "project name")


@pytest.mark.parametrize(
    ("flag", "value", "field"),
    [
        ("--max-steps", str(10**23), "training.max_steps"),
        ("--seed", str(2**40), "training.seed"),
        ("--save-every", str(10**12), "training.save_every"),
    ],
)
def test_huge_numbers_are_refused_with_the_field_and_range(
    capsys, tiny_model_dir, tmp_path, flag, value, field
):
    data = write_jsonl(tmp_path / "facts.jsonl", fact_rows(2))
    out = tmp_path / "run"
    one_error_line(
        capsys,
        ["train", "--model", str(tiny_model_dir), "--data", str(data), "--output", str(out), flag, value],
        field,
        "an integer from",
    )
    assert not out.exists()


def test_a_written_bundle_carries_no_temp_marker(capsys, tiny_model_dir, tmp_path):
    import json

    data = write_jsonl(tmp_path / "facts.jsonl", fact_rows(2))
    config = tmp_path / "run.toml"
    config.write_text(f'[model]\npath = "{tiny_model_dir}"\n[data]\npath = "{data}"\n')
    assert main(["cluster-bundle", str(config), str(tmp_path / "out" / "bundle"), "--with-model"]) == 0
    bundle = tmp_path / "out" / "bundle"
    listed = {f["path"] for f in json.loads((bundle / "bundle.json").read_text())["files"]}
    assert ".whetstone-temp" not in " ".join(files_under(bundle)) and "model/config.json" in listed
    assert files_under(tmp_path / "out") == sorted(["bundle", *(f"bundle/{p}" for p in files_under(bundle))])
