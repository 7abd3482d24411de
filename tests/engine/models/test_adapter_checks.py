"""Adapters are checked like model folders before peft loads them (issue 18 item 14).

`generate --adapter` with a broken adapter_config.json, a rank that does not match its weights
or pickle-only weights ended with exit 1 (the pickle case with six lines suggesting
weights_only=False). Now each is one `error:` line, exit 2, naming the adapter folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.errors import ModelError
from engine.models.adapters import check_adapter
from engine.models.folder import ModelFolder


def _make_adapter(model_dir: Path, out: Path, rank: int = 4, **config) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True)
    lora = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"], **config)
    get_peft_model(model, lora).save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory) -> Path:
    return _make_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter") / "adapter")


@pytest.fixture
def adapter(adapter_dir, tmp_path) -> Path:
    return Path(shutil.copytree(adapter_dir, tmp_path / "adapter"))


def _edit_config(adapter: Path, **changes) -> None:
    file = adapter / "adapter_config.json"
    file.write_text(json.dumps({**json.loads(file.read_text()), **changes}))


def _generate(model: Path, adapter: Path, capsys) -> tuple[int, str]:
    code = main(
        [
            "generate",
            "--model",
            str(model),
            "--adapter",
            str(adapter),
            "--prompt",
            "hi",
            "--max-new-tokens",
            "2",
        ]
    )
    return code, capsys.readouterr().err


def test_a_sound_adapter_passes_every_check(adapter, tiny_model_dir):
    checked = check_adapter(adapter, ModelFolder.open(tiny_model_dir))
    assert checked.rank == 4 and checked.safetensors and checked.path == adapter


def test_broken_adapter_config_is_one_error_line(adapter, tiny_model_dir, capsys):
    (adapter / "adapter_config.json").write_text('{"r": ')
    code, err = _generate(tiny_model_dir, adapter, capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert "adapter_config.json cannot be read" in err and "adapter looks damaged" in err


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"r": 0}, "r = 0 is not a positive whole number"),
        ({"r": "8"}, "r = '8' is not a positive whole number"),
        ({"lora_alpha": -1}, "lora_alpha = -1"),
        ({"target_modules": 5}, "target_modules"),
        ({"peft_type": "IA3"}, "Whetstone loads LoRA and prompt-tuning adapters only"),
    ],
)
def test_impossible_config_values_are_named(adapter, tiny_model_dir, changes, words):
    _edit_config(adapter, **changes)
    with pytest.raises(ModelError, match=words.replace("(", r"\(")):
        check_adapter(adapter, ModelFolder.open(tiny_model_dir))


def test_a_rank_that_does_not_match_the_weights_is_one_error_line(adapter, tiny_model_dir, capsys):
    _edit_config(adapter, r=8)
    code, err = _generate(tiny_model_dir, adapter, capsys)
    assert code == 2 and err.count("\n") == 1
    assert "says rank 8, but the weights of model.layers.0.self_attn.q_proj have rank 4" in err


def test_pickle_only_adapter_is_refused_without_consent(adapter, tiny_model_dir, capsys):
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(str(adapter / "adapter_model.safetensors")), adapter / "adapter_model.bin")
    (adapter / "adapter_model.safetensors").unlink()
    code, err = _generate(tiny_model_dir, adapter, capsys)
    assert code == 2 and err.count("\n") == 1
    assert "only pickle weights (adapter_model.bin)" in err and "weights_only" not in err
    assert not check_adapter(adapter, allow_pickle_weights=True).safetensors  # consent, as for models


def test_damaged_adapter_weights_are_named(adapter):
    file = adapter / "adapter_model.safetensors"
    file.write_bytes(file.read_bytes()[:100])
    with pytest.raises(ModelError, match="adapter_model.safetensors in .* is damaged"):
        check_adapter(adapter)


def test_an_adapter_of_another_model_is_refused_before_loading(adapter, tiny_model_dir, tmp_path):
    other = Path(shutil.copytree(tiny_model_dir, tmp_path / "other"))
    config = json.loads((other / "config.json").read_text())
    from safetensors.torch import load_file, save_file

    weights = load_file(str(other / "model.safetensors"))
    weights = {k: (v[:, :32].contiguous() if "q_proj" in k else v) for k, v in weights.items()}
    save_file(weights, str(other / "model.safetensors"), metadata={"format": "pt"})
    (other / "config.json").write_text(json.dumps(config))
    words = "trained on another model: its model.layers.0.self_attn.q_proj is 64 wide"
    with pytest.raises(ModelError, match=words):
        check_adapter(adapter, ModelFolder.open(other))


def test_chat_server_and_export_use_the_same_adapter_check(adapter, tiny_model_dir):
    from engine.chat.loading import check_for_chat
    from engine.config import ModelConfig

    _edit_config(adapter, r=8)
    with pytest.raises(ModelError, match="says rank 8"):
        check_for_chat(ModelConfig(path=str(tiny_model_dir)), str(adapter))  # what chat-server's load runs


def _poison(adapter: Path, value: float) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(adapter / "adapter_model.safetensors")
    name = sorted(weights)[-1]
    weights[name][0, 0] = value  # one weight is enough to spoil every answer
    save_file(weights, adapter / "adapter_model.safetensors", metadata={"format": "pt"})


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_an_adapter_with_weights_that_are_not_numbers_is_refused_where_it_is_used(
    adapter, tiny_model_dir, tmp_path, capsys, value
):
    _poison(adapter, value)
    code, err = _generate(tiny_model_dir, adapter, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"The adapter in {adapter} holds weights that are not numbers (NaN or infinite, first in " in err
    assert "the run that wrote it diverged. Pick an earlier checkpoint" in err
    out = tmp_path / "lora.gguf"  # llama.cpp's adapter file too
    code = main(["export", str(adapter), "--adapter-gguf", str(out)])
    assert code == 2 and "holds weights that are not numbers" in capsys.readouterr().err
    assert not out.exists()
