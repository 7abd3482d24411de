"""training.activation_offload: saved activations in CPU memory on a GPU; the same training either way."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from testkit.engine_helpers import train_briefly

import engine.models.activation_offload as activation_offload
from engine.config import ConfigError, RunConfig, TrainingConfig
from engine.models import memory_estimate as me
from engine.models.activation_offload import activation_offload_plan
from engine.runs.events import read_events


def test_the_plan_offloads_only_on_cuda_and_for_the_engines_own_trainer():
    assert activation_offload_plan(False, "cuda", "sft") == (False, "training.activation_offload = false")
    assert activation_offload_plan(True, "cuda", "sft")[0] is True
    assert activation_offload_plan(True, "cuda", "full")[0] is True
    on, why = activation_offload_plan(True, "cpu", "sft")
    assert on is False and "already in RAM" in why
    on, why = activation_offload_plan(True, "cuda", "dpo")
    assert on is False and "TRL" in why


@pytest.mark.parametrize("value", ["auto", 1, None])
def test_the_setting_is_a_switch(value):
    with pytest.raises(ConfigError, match=r"training.activation_offload"):
        TrainingConfig(activation_offload=value)


def _llama_shaped_folder(folder: Path, layers: int = 8, hidden: int = 256, vocab: int = 1000) -> Path:
    """config.json and a safetensors file whose header has a Llama's shapes (the estimate reads no data)."""
    folder.mkdir()
    inter = 2 * hidden
    shapes = {"model.embed_tokens.weight": [vocab, hidden], "model.norm.weight": [hidden]}
    for i in range(layers):
        for name, shape in {
            "self_attn.q_proj": [hidden, hidden],
            "self_attn.k_proj": [hidden, hidden],
            "self_attn.v_proj": [hidden, hidden],
            "self_attn.o_proj": [hidden, hidden],
            "mlp.gate_proj": [inter, hidden],
            "mlp.up_proj": [inter, hidden],
            "mlp.down_proj": [hidden, inter],
        }.items():
            shapes[f"model.layers.{i}.{name}.weight"] = shape
        shapes[f"model.layers.{i}.input_layernorm.weight"] = [hidden]
    header, offset = {}, 0
    for name, shape in shapes.items():
        size = 2 * int(torch.Size(shape).numel())
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    with open(folder / "model.safetensors", "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + offset)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "vocab_size": vocab,
        "tie_word_embeddings": True,
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture
def eight_layers(tmp_path) -> Path:
    return _llama_shaped_folder(tmp_path / "eight-layers")


def test_the_estimate_keeps_two_layers_on_the_gpu_when_offloading(eight_layers):
    def activations(device: str, offload: bool, checkpointing: bool = False) -> int:
        config = RunConfig().with_overrides(
            {
                "training.activation_offload": offload,
                "training.gradient_checkpointing": checkpointing,
                "data.max_length": 512,
            }
        )
        return me.estimate_training_memory(eight_layers, config, device).part(me.ACTIVATIONS).bytes

    kept, offloaded = activations("cuda", False), activations("cuda", True)
    assert offloaded == 2 * kept // 8  # two of the eight layers' activations at a time
    assert activations("cpu", True) == activations("cpu", False)  # nothing to gain on the CPU
    # With checkpointing the per-layer checkpoints are kept by the checkpoint itself: no change.
    assert activations("cuda", True, True) == activations("cuda", False, True)


def test_an_offloaded_run_saves_through_save_on_cpu_and_trains_exactly_the_same(
    tiny_model_dir, facts_file, tmp_path, monkeypatch
):
    """On the CPU the plan says no; forced on here, the Trainer's step must run inside save_on_cpu."""
    packed: list[int] = []

    class CountingSaveOnCpu(torch.autograd.graph.save_on_cpu):
        def __init__(self, pin_memory=False, device_type="cuda"):
            super().__init__(pin_memory, device_type)
            pack = self.pack_hook
            self.pack_hook = lambda tensor: (packed.append(1), pack(tensor))[1]

    def run(name: str, offload: bool) -> dict:
        return train_briefly(
            tiny_model_dir,
            facts_file,
            tmp_path / name,
            training__gradient_checkpointing=False,
            training__activation_offload=offload,
            lora__dropout=0.0,
        )

    plain = run("plain", False)
    assert packed == []
    monkeypatch.setattr(
        activation_offload, "activation_offload_plan", lambda *_: (True, "forced by the test")
    )
    monkeypatch.setattr(torch.autograd.graph, "save_on_cpu", CountingSaveOnCpu)
    offloaded = run("offloaded", True)
    assert len(packed) > 100  # every saved activation of 3 steps went through the hook
    assert offloaded == plain
    [event] = [e for e in read_events(tmp_path / "offloaded" / "events.jsonl") if "activation_offload" in e]
    assert event["message"] == "Activation offload on: forced by the test."


def test_a_run_that_does_not_fit_on_a_gpu_is_told_about_the_offload(eight_layers):
    config = RunConfig().with_overrides(
        {
            "model.path": str(eight_layers),
            "training.gradient_checkpointing": False,
            "training.batch_size": 32,
            "data.max_length": 2048,
        }
    )
    estimate = me.estimate_training_memory(eight_layers, config, "cuda")
    tips = me.suggestions(estimate, config, free_bytes=estimate.total_bytes // 2)
    assert any(tip.startswith("training.activation_offload on saves ~") for tip in tips)
    on_cpu = me.estimate_training_memory(eight_layers, config, "cpu")
    assert not any(
        "activation_offload" in tip for tip in me.suggestions(on_cpu, config, on_cpu.total_bytes // 2)
    )
