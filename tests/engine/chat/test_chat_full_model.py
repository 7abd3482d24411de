"""Chat with a full fine-tuning run: its RUN_DIR/model loads in the base's place (no adapter/)."""

from __future__ import annotations

import io
import json

import pytest
from testkit.full_run import make_full_run
from testkit.tiny_model import FACTS

from engine.chat.loading import check_for_chat, generate_text, load_for_chat
from engine.chat.settings import GenerationSettings
from engine.config import ModelConfig, QuantizationConfig
from engine.models.folder import ModelFolder


@pytest.fixture(scope="module")
def full_run(tiny_model_dir, tmp_path_factory):
    return make_full_run(tiny_model_dir, tmp_path_factory.mktemp("full") / "run")


def _weights(model, name: str):
    return dict(model.named_parameters())[name].detach().float()


def test_the_check_finds_the_run_model_instead_of_an_adapter(tiny_model_dir, full_run):
    for picked in (full_run, full_run / "model"):
        folder, checked = check_for_chat(ModelConfig(path=str(tiny_model_dir)), str(picked))
        assert isinstance(checked, ModelFolder) and checked.path == (full_run / "model").resolve()
        assert folder.path == checked.path


def test_the_run_model_loads_and_answers_its_trained_fact(tiny_model_dir, full_run):
    from transformers import AutoModelForCausalLM

    model, tokenizer = load_for_chat(
        str(tiny_model_dir), str(full_run), quant=QuantizationConfig(load_in_4bit=False), device="cpu"
    )
    saved = AutoModelForCausalLM.from_pretrained(str(full_run / "model"))
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    name = "lm_head.weight"
    assert _weights(model, name).equal(_weights(saved, name))
    assert not _weights(model, name).equal(_weights(base, name))
    question, answer = FACTS[0]
    reply = generate_text(model, tokenizer, question, GenerationSettings(temperature=0.0, max_new_tokens=12))
    assert answer in reply


def test_the_chat_server_loads_a_full_run_in_four_bits(tiny_model_dir, full_run):
    from engine.chat.server import ChatServer

    out = io.StringIO()
    server = ChatServer(io.BytesIO(), out)
    server._warm.start()
    server._load({"op": "load", "model": str(tiny_model_dir), "adapter": str(full_run), "device": "cpu"})
    loaded = [json.loads(line) for line in out.getvalue().splitlines()][-1]
    assert loaded["type"] == "loaded" and loaded["adapter"] == str((full_run / "model").resolve())
    # The embeddings stay unquantized in 4-bit loading: they are the run's, not the base's.
    from safetensors.torch import load_file

    embed = load_file(str(full_run / "model" / "model.safetensors"))["model.embed_tokens.weight"]
    assert _weights(server.model, "model.embed_tokens.weight").equal(embed.float())
