"""An export writes only what it made: no clobbered Modelfile, no foreign folder removed, and a
full disk or an impossible target is one `error:` line (and a JSON error object), exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.util.files import TEMP_MARKER


@pytest.fixture(scope="module")
def run_dir(short_run):
    return short_run


def one_error_line(capsys, argv) -> tuple[str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith(("error:", "internal error:"))]
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0], captured.out


@pytest.mark.parametrize("target", ["/proc/whetstone/x.gguf", "/proc/self/x.gguf", "/sys/x.gguf"])
def test_a_gguf_in_a_system_folder_is_refused_with_the_reason(run_dir, capsys, target):
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    line, _ = one_error_line(capsys, ["export", str(run_dir), "--gguf", target, "--no-check"])
    assert "not a place on a disk" in line and "GiB" not in line


@pytest.mark.parametrize("flag", ["--gguf", "--merged"])
def test_an_output_under_a_file_is_refused(run_dir, capsys, tmp_path, flag):
    (tmp_path / "notes.txt").write_text("mine")
    name = "x.gguf" if flag == "--gguf" else "merged"
    target = tmp_path / "notes.txt" / name
    line, _ = one_error_line(capsys, ["export", str(run_dir), flag, str(target), "--no-check"])
    assert "notes.txt is not a folder" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_an_existing_modelfile_is_never_overwritten(run_dir, capsys, tmp_path):
    (tmp_path / "x.Modelfile").write_text("FROM ./my-other-model.gguf\n")
    line, out = one_error_line(
        capsys,
        [
            "export",
            str(run_dir),
            "--gguf",
            str(tmp_path / "x.gguf"),
            "--ollama",
            "--no-check",
            "--progress-json",
        ],
    )
    assert str(tmp_path / "x.Modelfile") in line and "never overwrites" in line and "another folder" in line
    assert json.loads(out.splitlines()[-1])["kind"] == "io"
    assert (tmp_path / "x.Modelfile").read_text() == "FROM ./my-other-model.gguf\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.Modelfile"]  # refused before any work


def test_a_modelfile_that_appears_during_the_export_is_kept_and_the_gguf_removed(
    run_dir, capsys, tmp_path, monkeypatch
):
    from engine.export import gguf_write

    real = gguf_write.write_gguf

    def write_then_someone_saves_a_modelfile(*args, **kwargs):
        out = real(*args, **kwargs)
        (tmp_path / "x.Modelfile").write_text("theirs")
        return out

    monkeypatch.setattr(gguf_write, "write_gguf", write_then_someone_saves_a_modelfile)
    line, _ = one_error_line(
        capsys, ["export", str(run_dir), "--gguf", str(tmp_path / "x.gguf"), "--ollama", "--no-check"]
    )
    assert "x.Modelfile already exists" in line
    assert (tmp_path / "x.Modelfile").read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.Modelfile"]


@pytest.mark.parametrize("flag", ["--gguf", "--merged"])
def test_a_full_disk_is_an_io_error_with_a_json_error_object(run_dir, capsys, tmp_path, monkeypatch, flag):
    import gguf
    from transformers import PreTrainedModel

    def full(*_args, **_kwargs):
        if flag == "--gguf":  # numpy's short write, as gguf's writer reports a full disk
            raise OSError("8704 requested and 4320 written")
        raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")

    if flag == "--gguf":
        monkeypatch.setattr(gguf.GGUFWriter, "write_tensor_data", full)
    else:
        monkeypatch.setattr(PreTrainedModel, "save_pretrained", full)
    out = tmp_path / ("x.gguf" if flag == "--gguf" else "merged")
    argv = ["export", str(run_dir), flag, str(out), "--no-check", "--progress-json"]
    line, stdout = one_error_line(capsys, argv)
    assert line.startswith("error: The disk is full") and "Free some space" in line
    error = json.loads(stdout.splitlines()[-1])
    assert error["kind"] == "io" and error["error"].startswith("The disk is full") and error["hint"]
    assert list(tmp_path.iterdir()) == []  # nothing half-written, no temp folder


@pytest.mark.parametrize(("flag", "temp"), [("--gguf", ".x.merge-tmp"), ("--merged", ".merged.partial")])
def test_a_folder_named_like_our_temp_folder_is_left_alone(run_dir, capsys, tmp_path, flag, temp):
    theirs = tmp_path / temp
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("years of work")
    out = tmp_path / ("x.gguf" if flag == "--gguf" else "merged")
    line, _ = one_error_line(capsys, ["export", str(run_dir), flag, str(out), "--no-check"])
    assert str(theirs) in line and "not made by Whetstone" in line
    assert (theirs / "thesis.tex").read_text() == "years of work"


def test_a_leftover_temp_folder_of_ours_is_cleaned_up(run_dir, capsys, tmp_path):
    ours = tmp_path / ".x.merge-tmp"
    ours.mkdir()
    (ours / TEMP_MARKER).write_text("")
    (ours / "model.safetensors").write_bytes(b"half")
    assert main(["export", str(run_dir), "--gguf", str(tmp_path / "x.gguf"), "--no-check"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.README.md", "x.gguf"]  # card, no leftover


def test_an_unknown_quant_type_is_refused_before_the_merge(run_dir, capsys, tmp_path, monkeypatch):
    from engine.export import merge

    def no_merge(*_args, **_kwargs):
        raise AssertionError("merged before the type was checked")

    monkeypatch.setattr(merge, "write_merged", no_merge)
    line, _ = one_error_line(
        capsys, ["export", str(run_dir), "--gguf", str(tmp_path / "x.gguf"), "--quant", "q3_k", "--no-check"]
    )
    assert "'q3_k'" in line and "q4_k_m" in line
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_an_npz_is_refused_as_an_importance_matrix(run_dir, capsys, tmp_path):
    junk = tmp_path / "matrix.npz"
    junk.write_text("not a matrix")
    argv = ["export", str(run_dir), "--gguf", str(tmp_path / "x.gguf"), "--quant", "q4_k_m"]
    line, _ = one_error_line(capsys, [*argv, "--imatrix-file", str(junk), "--no-check"])
    assert "is not an .npz file" in line and "pickle" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["matrix.npz"]
