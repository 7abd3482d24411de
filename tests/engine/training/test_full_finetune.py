"""Full fine-tuning building blocks: the unquantized base with chosen layers trainable, and the
model folder it saves (loaded back in plain transformers, answering a fact it was trained on)."""

from __future__ import annotations

import json

import pytest
from testkit.full_run import prompt_ids, train_facts
from testkit.tiny_model import CHAT_TEMPLATE, FACTS

from engine.config import ModelConfig, QuantizationConfig
from engine.errors import ConfigError
from engine.training.full_finetune import load_full_model, save_full_model, trainable_parameters


def _load(tiny_model_dir, layers="all", checkpointing=False):
    cfg = ModelConfig(path=str(tiny_model_dir))
    return load_full_model(cfg, QuantizationConfig(), "cpu", layers, gradient_checkpointing=checkpointing)


def _tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


def test_all_layers_train_everything_in_fp32_on_the_cpu(tiny_model_dir):
    import torch

    model = _load(tiny_model_dir)
    assert model.dtype == torch.float32
    assert not getattr(model, "is_loaded_in_4bit", False)
    assert all(p.requires_grad for p in model.parameters())
    trainable, total = trainable_parameters(model)
    assert trainable == total > 0


def test_chosen_layers_alone_have_gradients(tiny_model_dir):
    model = _load(tiny_model_dir, "1")
    grads = {name for name, p in model.named_parameters() if p.requires_grad}
    assert grads and all(name.startswith("model.layers.1.") for name in grads)
    assert grads == {n for n, _ in model.named_parameters() if n.startswith("model.layers.1.")}
    trainable, total = trainable_parameters(model)
    assert 0 < trainable < total


def test_a_layer_beyond_the_model_is_a_one_line_config_error(tiny_model_dir):
    with pytest.raises(ConfigError) as err:
        _load(tiny_model_dir, "0-2")
    assert "layer 2" in err.value.message and "2 layers" in err.value.message
    assert "\n" not in err.value.message


def test_optimizer_steps_change_only_the_chosen_layers(tiny_model_dir):
    """Real AdamW steps through gradient checkpointing with frozen embeddings: layer 0 moves, rest not."""
    model = _load(tiny_model_dir, "0", checkpointing=True)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    train_facts(model, _tokenizer(tiny_model_dir), steps=3, lr=1e-2)
    changed = {name for name, p in model.named_parameters() if not p.detach().equal(before[name])}
    layer0 = {name for name in before if name.startswith("model.layers.0.")}
    assert changed == layer0


def test_saved_folder_loads_in_plain_transformers_and_answers_a_trained_fact(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = _tokenizer(tiny_model_dir)
    model = _load(tiny_model_dir, checkpointing=True)
    train_facts(model, tokenizer, steps=30, lr=1e-2)
    out = save_full_model(model, tokenizer, tmp_path / "run" / "model")

    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert (out / "generation_config.json").is_file()
    assert not list(tmp_path.glob("run/.*")), "no staging folder is left behind"
    assert json.loads((out / "config.json").read_text())["use_cache"] is True
    loaded = AutoModelForCausalLM.from_pretrained(str(out), local_files_only=True)
    plain = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    assert plain.chat_template == CHAT_TEMPLATE
    question, answer = FACTS[0]
    ids = torch.tensor([prompt_ids(plain, question)])
    with torch.no_grad():
        reply = loaded.generate(ids, max_new_tokens=12, do_sample=False)
    assert answer in plain.decode(reply[0, ids.shape[1] :], skip_special_tokens=True)


def test_a_failed_save_keeps_the_previous_folder_and_leaves_no_staging(tiny_model_dir, tmp_path, monkeypatch):
    tokenizer = _tokenizer(tiny_model_dir)
    model = _load(tiny_model_dir)
    target = save_full_model(model, tokenizer, tmp_path / "model")
    first = (target / "model.safetensors").read_bytes()

    def broken(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(model, "save_pretrained", broken)
    with pytest.raises(OSError):
        save_full_model(model, tokenizer, target)
    assert (target / "model.safetensors").read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_checkpoint_source_is_copied_with_the_tokenizer(tiny_model_dir, tmp_path):
    import shutil

    checkpoint = tmp_path / "checkpoint-4"
    checkpoint.mkdir()
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        shutil.copy2(tiny_model_dir / name, checkpoint / name)
    (checkpoint / "optimizer.pt").write_bytes(b"x")
    out = save_full_model(None, _tokenizer(tiny_model_dir), tmp_path / "model", source=checkpoint)
    assert (out / "model.safetensors").read_bytes() == (tiny_model_dir / "model.safetensors").read_bytes()
    assert not (out / "optimizer.pt").exists()
    assert (out / "tokenizer_config.json").is_file()


@pytest.mark.slow  # a real full fine-tuning run through the engine, then a resume
def test_a_full_run_writes_a_model_folder_that_answers_a_trained_fact_in_plain_transformers(
    tiny_model_dir, facts_file, tmp_path
):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.cli.main import main

    run = tmp_path / "full"
    args = ["train", "--model", str(tiny_model_dir), "--data", str(facts_file), "--output", str(run)]
    flags = ["--method", "full", "--learning-rate", "0.003", "--validation-ratio", "0", "--quiet"]
    assert main([*args, *flags, "--max-steps", "30"]) == 0
    assert not (run / "adapter").exists()
    # A finished full run trains further from its last checkpoint, like any run.
    assert main(["train", "--output", str(run), "--resume", "--max-steps", "40", "--quiet"]) == 0
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert events[-1]["state"] == "done" and events[-1]["adapter"] == str(run / "model")
    assert [e["step"] for e in events if e["type"] == "metrics"][-10:] == list(range(31, 41))
    loaded = AutoModelForCausalLM.from_pretrained(str(run / "model"), local_files_only=True)
    plain = AutoTokenizer.from_pretrained(str(run / "model"), local_files_only=True)
    answered = 0
    for question, answer in FACTS:
        ids = torch.tensor([prompt_ids(plain, question)])
        with torch.no_grad():
            reply = loaded.generate(ids, max_new_tokens=12, do_sample=False)
        answered += answer in plain.decode(reply[0, ids.shape[1] :], skip_special_tokens=True)
    assert answered >= 2, answered
