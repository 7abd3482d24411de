"""Every bad input gives one `error: ...` line, exit code 2, no traceback, no output that looks complete."""

from __future__ import annotations

import json
import shutil

import pytest
from testkit.engine_helpers import expect_bad_input, run_engine, states
from testkit.tiny_model import fact_rows, write_jsonl


@pytest.fixture
def good_data(tmp_path):
    return write_jsonl(tmp_path / "good.jsonl", fact_rows(1))


def fake_model(tmp_path, files: dict[str, str]):
    folder = tmp_path / "model"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_missing_data_file(capsys, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    expect_bad_input(
        capsys,
        [
            "train",
            "--model",
            str(tiny_model_dir),
            "--data",
            str(tmp_path / "nope.jsonl"),
            "--output",
            str(out),
        ],
        "nope.jsonl",
        "does not exist",
    )
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("", ["is empty"]),
        ("{oops\n[1, 2\n", ["no usable rows", "line 1", "invalid JSON"]),
        ('{"body": "hi"}\n', ["Cannot tell the data's shape", "body", "data.columns"]),
    ],
)
def test_empty_or_malformed_data(capsys, tiny_model_dir, tmp_path, content, words):
    data = tmp_path / "d.jsonl"
    data.write_text(content)
    out = tmp_path / "run"
    expect_bad_input(
        capsys, ["train", "--model", str(tiny_model_dir), "--data", str(data), "--output", str(out)], *words
    )
    assert not out.exists()


def test_model_folder_problems(capsys, tmp_path, good_data):
    def train_with(model):
        return ["train", "--model", str(model), "--data", str(good_data), "--output", str(tmp_path / "run")]

    expect_bad_input(capsys, train_with(tmp_path / "missing"), "does not exist", "never downloaded")
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    expect_bad_input(capsys, train_with(gguf), "is a file, not a model folder", "Convert")
    empty = tmp_path / "empty"
    empty.mkdir()
    expect_bad_input(capsys, train_with(empty), "config.json is missing")


def test_pickle_weights_are_refused_unless_allowed(capsys, tmp_path, good_data):
    model = fake_model(
        tmp_path, {"config.json": '{"model_type": "llama"}', "pytorch_model.bin": "x", "tokenizer.json": "{}"}
    )
    expect_bad_input(
        capsys,
        ["train", "--model", str(model), "--data", str(good_data), "--output", str(tmp_path / "r")],
        "pickle",
        "allow_pickle_weights",
    )


def test_remote_code_is_refused_unless_trusted(capsys, tmp_path, good_data):
    config = {"model_type": "my_own_arch", "auto_map": {"AutoModelForCausalLM": "modeling.MyModel"}}
    model = fake_model(
        tmp_path, {"config.json": json.dumps(config), "model.safetensors": "x", "tokenizer.json": "{}"}
    )
    expect_bad_input(
        capsys,
        ["train", "--model", str(model), "--data", str(good_data), "--output", str(tmp_path / "r")],
        "my_own_arch",
        "allow-remote-code",
    )


def test_impossible_settings_and_bad_config_files(capsys, tiny_model_dir, tmp_path, good_data):
    base = [
        "train",
        "--model",
        str(tiny_model_dir),
        "--data",
        str(good_data),
        "--output",
        str(tmp_path / "run"),
    ]
    expect_bad_input(capsys, [*base, "--lora-rank", "0"], "lora.rank = 0", "integer from 1")
    expect_bad_input(capsys, [*base, "--batch-size", "-3"], "training.batch_size = -3")
    expect_bad_input(capsys, [*base, "--learning-rate", "abc"], "--learning-rate", "invalid float")
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[training]\nlearning_rate = \n")
    expect_bad_input(capsys, [*base, "--config", str(bad_toml)], "not valid TOML")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[lora]\nrang = 4\n")
    expect_bad_input(capsys, [*base, "--config", str(unknown)], "lora.rang is not a setting")
    expect_bad_input(capsys, [*base, "--max-length", "4"], "data.max_length = 4")
    assert not (tmp_path / "run").exists()


def test_existing_output_and_resume_without_a_run(capsys, tiny_model_dir, tmp_path, good_data):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "something.txt").write_text("mine")
    base = ["train", "--model", str(tiny_model_dir), "--data", str(good_data)]
    expect_bad_input(capsys, [*base, "--output", str(taken)], "already exists", "--resume")
    assert (taken / "something.txt").read_text() == "mine"
    expect_bad_input(capsys, [*base, "--output", str(tmp_path / "fresh"), "--resume"], "no run to resume")


def test_rows_that_leave_nothing_to_train_fail_the_run_without_an_adapter(
    capsys, tiny_model_dir, tmp_path, good_data
):
    out = tmp_path / "run"
    expect_bad_input(
        capsys,
        [
            "train",
            "--model",
            str(tiny_model_dir),
            "--data",
            str(good_data),
            "--output",
            str(out),
            "--max-length",
            "8",
        ],
        "can be trained on",
    )
    assert states(out)[-1] == "failed"
    assert not (out / "adapter").exists()


def test_generate_with_something_that_is_not_an_adapter(capsys, tiny_model_dir, tmp_path):
    expect_bad_input(
        capsys,
        ["generate", "--model", str(tiny_model_dir), "--adapter", str(tmp_path), "--prompt", "hi"],
        "no LoRA adapter",
    )


@pytest.mark.parametrize("error", ["cuda_memory", "ram"])
def test_out_of_memory_in_a_command_is_one_line_not_an_internal_error(
    capsys, tiny_model_dir, monkeypatch, error
):
    import torch
    import transformers

    def too_big(*args, **kwargs):
        if error == "cuda_memory":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        raise MemoryError

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", too_big)
    line = expect_bad_input(
        capsys,
        ["generate", "--model", str(tiny_model_dir), "--prompt", "hi"],
        "Out of memory: what `generate` loads does not fit in the ",
        "pick a smaller model, or run on the CPU",
    )
    assert ("GPU memory free now" if error == "cuda_memory" else "RAM free now") in line


def test_a_real_process_prints_one_line_and_no_traceback(tmp_path, good_data):
    proc = run_engine(
        "train",
        "--model",
        str(tmp_path / "missing"),
        "--data",
        str(good_data),
        "--output",
        str(tmp_path / "r"),
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: ")
    proc = run_engine("train", "--bogus-flag")
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_unreadable_data_file(capsys, tiny_model_dir, tmp_path, good_data):
    if shutil.which("id") and __import__("os").geteuid() == 0:
        pytest.skip("root can read any file")
    good_data.chmod(0)
    expect_bad_input(
        capsys,
        ["train", "--model", str(tiny_model_dir), "--data", str(good_data), "--output", str(tmp_path / "r")],
        "Cannot read",
    )
