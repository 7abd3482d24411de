"""A folder that holds no text-generation model, or one of a type transformers does not know, or
whose config.json its model class rejects, is refused with a message that says so (exit 2),
before any weight loads: an encoder used to fail inside bitsandbytes with a bare AssertionError."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.errors import ModelError
from engine.models.folder import ModelFolder
from engine.models.types import causal_lm_model_types


def _with_config(tiny_model_dir: Path, tmp_path: Path, **changes) -> Path:
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_the_causal_lm_types_are_transformers_own():
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    assert causal_lm_model_types() == frozenset(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
    assert {"llama", "qwen2", "gemma3", "gpt2"} <= causal_lm_model_types()
    assert "t5" not in causal_lm_model_types()


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"model_type": "bert", "architectures": ["BertForMaskedLM"]}, "holds a BertForMaskedLM model"),
        ({"model_type": "t5", "architectures": ["T5ForConditionalGeneration"]}, "not a causal language"),
        ({"model_type": "t5", "architectures": None}, "holds a 't5' model, which is not a causal"),
        ({"model_type": "whetstone-x"}, "type 'whetstone-x', which the transformers library"),
    ],
)
def test_a_folder_of_the_wrong_kind_is_refused_in_one_line(tiny_model_dir, tmp_path, capsys, changes, words):
    folder = _with_config(tiny_model_dir, tmp_path, **changes)
    with pytest.raises(ModelError) as refused:
        ModelFolder.open(folder)
    assert refused.value.hint.startswith("Pick a text-generation model")
    assert main(["generate", "--model", str(folder), "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "bug" not in err and "pip install" not in err


def test_models_of_every_generating_head_pass(tiny_model_dir, tmp_path):
    folder = _with_config(tiny_model_dir, tmp_path, architectures=["LlamaForCausalLM", "LlamaModel"])
    ModelFolder.open(folder)  # one generating head among several is enough
    gpt2 = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}
    (folder / "config.json").write_text(json.dumps(gpt2))
    ModelFolder.read(folder).check_kind()


def test_a_config_its_model_class_rejects_is_blamed_on_config_json_not_the_tokenizer(
    tiny_model_dir, tmp_path, capsys
):
    folder = _with_config(tiny_model_dir, tmp_path, hidden_size=30, num_attention_heads=4)  # 30 % 4 != 0
    assert main(["generate", "--model", str(folder), "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert "config.json is not a valid configuration" in err and "tokenizer" not in err.split(":")[0]
