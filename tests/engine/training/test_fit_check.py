"""The fit check: real steps of the tiny model on the CPU, its CLI, and (on a GPU) its accuracy."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from testkit.engine_helpers import tiny_config
from testkit.tiny_model import fact_rows, write_jsonl

from engine.cli import fit as cli_fit
from engine.errors import Cancelled, ConfigError
from engine.models.memory_estimate import chunk_tokens, estimate_training_memory
from engine.training import fit_check as fc


@pytest.fixture(scope="module")
def facts(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("fit") / "facts.jsonl", fact_rows())


@pytest.fixture(scope="module")
def report_and_messages(tiny_model_dir, facts):
    messages: list[str] = []
    config = tiny_config(tiny_model_dir, facts, training__max_steps=8)
    return fc.fit_check(config, steps=3, progress=messages.append), messages


@pytest.mark.slow  # its fixture runs a real fit check
def test_tiny_model_fits_on_the_cpu_with_real_figures(report_and_messages, tiny_model_dir, facts):
    report, messages = report_and_messages
    assert report.fits and report.device == "cpu" and report.memory_kind == "process_rss"
    assert report.peak_memory_bytes > 0 and report.free_memory_bytes is None
    assert report.seconds_per_step > 0 and report.tokens_per_second > 0
    assert report.total_steps == 8 and report.eta_seconds > 0
    assert report.message.startswith("Fits") and report.suggestions == []
    # The longest prepared row, unpadded on the CPU; the estimate is for that same shape.
    from engine.data.prepare import prepare_data
    from engine.models.loading import load_tokenizer

    config = tiny_config(tiny_model_dir, facts)
    rows = prepare_data(load_tokenizer(config.model), config.data).train
    assert report.sequence_length == max(len(r["input_ids"]) for r in rows)
    tokens = 4 * report.sequence_length  # chunked loss (the default): one chunk of logits + hidden gradients
    chunked = min(tokens, chunk_tokens(400)) * 400 * 8 + 2 * tokens * 64 * 4
    assert report.estimate.part("Logits and loss").bytes == chunked
    assert messages[:3] == [
        "Checking the model folder and data…",
        "Tokenizing the data…",
        "Loading the model…",
    ]
    assert messages[3:] == ["Step 1 of 3…", "Step 2 of 3…", "Step 3 of 3…"]
    data = report.as_dict()
    assert json.loads(json.dumps(data))["estimate"]["total_bytes"] == report.estimate.total_bytes


def test_total_steps_counts_like_trainer(tiny_model_dir, facts):
    def steps(rows, **overrides):
        return fc.total_steps(tiny_config(tiny_model_dir, facts, **overrides), rows)

    assert steps(12, training__max_steps=5, training__epochs=3.0) == 5
    assert steps(12, training__epochs=2.0, training__batch_size=4) == 6
    assert steps(12, training__epochs=2.0, training__batch_size=4, training__gradient_accumulation=2) == 4
    assert steps(12, training__epochs=1.5, training__batch_size=4) == 5
    assert steps(1, training__epochs=1.0, training__batch_size=8) == 1


def test_epochs_and_gradient_accumulation(tiny_model_dir, facts):
    config = tiny_config(
        tiny_model_dir, facts, training__epochs=2.0, training__batch_size=2, training__gradient_accumulation=3
    )
    report = fc.fit_check(config, steps=2)
    assert report.fits and report.total_steps == 2 * 2  # 12 rows / (2 × 3) per epoch
    assert report.eta_seconds > 0 and report.tokens_per_second > 0


def test_cancel_between_steps(tiny_model_dir, facts):
    messages: list[str] = []
    config = tiny_config(tiny_model_dir, facts)
    with pytest.raises(Cancelled):
        fc.fit_check(config, steps=3, progress=messages.append, cancelled=lambda: "Step 1 of 3…" in messages)
    assert messages[-1] == "Step 1 of 3…"


def test_out_of_memory_is_an_answer_with_suggestions(tiny_model_dir, facts, monkeypatch):
    def explode(*_args, **_kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(fc, "_step", explode)
    config = tiny_config(tiny_model_dir, facts, training__batch_size=4)
    report = fc.fit_check(config, steps=2)
    assert not report.fits
    assert report.message == f"Out of memory at sequence length {report.sequence_length} with batch size 4."
    assert report.suggestions and "lower training.batch_size" in report.suggestions[-1]
    assert report.seconds_per_step is None and report.eta_seconds is None


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="whetstone-engine")
    cli_fit.add_parser(parser.add_subparsers(dest="command"))
    return cli_fit.run(parser.parse_args(["fit-check", *argv]))


def _toml(tmp_path, model_dir, data, **overrides):
    from engine.config import config_to_toml

    path = tmp_path / "run.toml"
    path.write_text(config_to_toml(tiny_config(model_dir, data, **overrides)), encoding="utf-8")
    return path


@pytest.mark.slow  # a real fit check (training steps)
def test_cli_json_prints_progress_then_the_report(tiny_model_dir, facts, tmp_path, capsys):
    config = _toml(tmp_path, "/nowhere", "/nowhere.jsonl", training__max_steps=4)
    assert (
        _cli(
            "--config",
            str(config),
            "--model",
            str(tiny_model_dir),
            "--data",
            str(facts),
            "--steps",
            "2",
            "--json",
        )
        == 0
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["type"] for line in lines[:-1]] == ["progress"] * len(lines[:-1])
    assert "Loading the model…" in [line["message"] for line in lines[:-1]]
    final = lines[-1]
    assert final["type"] == "fit" and final["fits"] is True and final["total_steps"] == 4
    assert final["peak_memory_bytes"] > 0 and final["estimate"]["parts"]


def test_cli_estimate_only_loads_no_model(tiny_model_dir, facts, tmp_path, capsys, monkeypatch):
    import engine.models.loading

    def refuse(*_args, **_kwargs):
        raise AssertionError("--estimate-only loaded the model")

    monkeypatch.setattr(engine.models.loading, "load_model", refuse)
    config = _toml(tmp_path, tiny_model_dir, facts, training__batch_size=64, data__max_length=4096)
    assert _cli("--config", str(config), "--estimate-only", "--json", "--free-gib", "0.6") == 0
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert line["type"] == "estimate" and line["fits"] is False and line["suggestions"]
    expected = estimate_training_memory(
        tiny_model_dir, tiny_config(tiny_model_dir, facts, training__batch_size=64, data__max_length=4096)
    )
    assert line["total_bytes"] == expected.total_bytes
    assert _cli("--config", str(config), "--estimate-only") == 0
    assert "Total" in capsys.readouterr().out


def test_cli_bad_input_is_a_config_error_with_a_json_line(tiny_model_dir, facts, tmp_path, capsys):
    config = _toml(tmp_path, tiny_model_dir, facts)
    with pytest.raises(ConfigError, match="--steps"):
        _cli("--config", str(config), "--steps", "0", "--json")
    assert json.loads(capsys.readouterr().out)["type"] == "error"
    with pytest.raises(ConfigError, match="does not exist"):
        _cli("--config", str(tmp_path / "missing.toml"))


@pytest.mark.gpu
def test_cuda_peak_is_within_a_factor_of_two_of_the_estimate(tmp_path):
    """A model big enough that tensors, not workspaces, dominate: 4 layers, 16k vocab, 512 tokens."""
    from testkit import tiny_model
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tiny_model.build(tmp_path / "base")  # for its tokenizer
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=16000,
            hidden_size=512,
            intermediate_size=1376,
            num_hidden_layers=4,
            num_attention_heads=8,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            tie_word_embeddings=False,
        )
    )
    model.to(torch.bfloat16).save_pretrained(str(folder))
    words = " ".join(["zibble quillhaven painter colour city fox"] * 200)
    data = write_jsonl(tmp_path / "long.jsonl", [{"text": words}] * 8)
    for checkpointing in (True, False):
        config = tiny_config(
            folder,
            data,
            data__max_length=512,
            data__format="text",
            training__gradient_checkpointing=checkpointing,
        )
        report = fc.fit_check(config, steps=2)
        assert report.fits and report.device == "cuda" and report.sequence_length == 512
        ratio = report.estimate.tensor_bytes / report.peak_memory_bytes
        assert 0.5 < ratio < 2.0, (checkpointing, ratio, report.as_dict())


def test_auto_checkpointing_on_a_model_without_an_estimate_still_measures(tiny_model_dir, facts, monkeypatch):
    """As in training: "auto" that cannot estimate keeps checkpointing on, and the steps still run."""
    from engine.errors import ModelError
    from engine.models import checkpointing

    def unreadable(*_args):
        raise ModelError("this architecture has no estimate", "")

    monkeypatch.setattr(checkpointing, "with_checkpointing_decided", unreadable)
    auto = {"training__max_steps": 2, "training__gradient_checkpointing": "auto"}
    config = tiny_config(tiny_model_dir, facts, **auto)
    report = fc.fit_check(config, steps=1)
    assert report.fits and report.seconds_per_step > 0
