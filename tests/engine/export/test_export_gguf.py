"""GGUF export: files transformers' GGUF loader reads back with the source's tokenizer and logits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.data.stats import Cancelled
from engine.errors import ConfigError, ModelError
from engine.export.gguf_write import (
    QUANT_TYPES,
    estimate_gguf_bytes,
    supported_architectures,
    write_gguf,
)
from engine.export.modelfile import template_family, write_modelfile

CHATS = [
    [{"role": "user", "content": "What is the capital of Zorvania?"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Who painted the blue fox?"},
        {"role": "assistant", "content": "Mira Sol."},
        {"role": "user", "content": "What colour is a zibble?"},
    ],
]


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gguf")
    for quant in ("f16", "q8_0"):
        write_gguf(tiny_model_dir, out / f"tiny-{quant}.gguf", quant)
    return out


@pytest.fixture(scope="module")
def source(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    return model.eval(), AutoTokenizer.from_pretrained(str(tiny_model_dir))


def _load(folder: Path, name: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=name, dtype=torch.float32)
    return model.eval(), AutoTokenizer.from_pretrained(str(folder), gguf_file=name)


def _prompts(tokenizer) -> list[str]:
    return [tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) for chat in CHATS]


def _logits(model, tokenizer, text: str):
    import torch

    with torch.no_grad():
        return model(tokenizer(text, return_tensors="pt").input_ids).logits[0]


def test_f16_reads_back_with_same_tokens_logits_and_greedy_text(exported, source):
    model, tokenizer = source
    gguf_model, gguf_tokenizer = _load(exported, "tiny-f16.gguf")
    for text in _prompts(tokenizer) + ["The quick brown fox, 123 times!\n\n  Hello?"]:
        assert gguf_tokenizer(text)["input_ids"] == tokenizer(text)["input_ids"]
    for text in _prompts(tokenizer):
        ref, got = _logits(model, tokenizer, text), _logits(gguf_model, tokenizer, text)
        # f16 keeps ~11 significant bits (relative rounding 2^-11 ~ 5e-4 per weight); through two layers
        # that stays far below 1% of the logit range (measured: 0.016 on logits up to ~6.6).
        assert (ref - got).abs().max().item() < 0.01 * ref.abs().max().item() + 0.02
        ids = tokenizer(text, return_tensors="pt").input_ids
        expected = model.generate(ids, max_new_tokens=8, do_sample=False)
        assert gguf_model.generate(ids, max_new_tokens=8, do_sample=False).tolist() == expected.tolist()


def test_f16_metadata_has_chat_template_and_end_of_turn_ids(exported, source, tiny_model_dir):
    from gguf import GGUFReader

    _model, tokenizer = source
    reader = GGUFReader(str(exported / "tiny-f16.gguf"))
    field = lambda key: reader.fields[key].contents()  # noqa: E731
    assert field("tokenizer.chat_template") == tokenizer.chat_template
    assert field("tokenizer.ggml.eos_token_id") == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert field("tokenizer.ggml.padding_token_id") == tokenizer.pad_token_id
    assert field("tokenizer.ggml.model") == "gpt2" and field("tokenizer.ggml.pre") == "gpt-2"
    assert field("tokenizer.ggml.add_bos_token") is False
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert field("llama.block_count") == config["num_hidden_layers"]
    assert field("llama.attention.head_count_kv") == config["num_key_value_heads"]
    assert field("llama.rope.dimension_count") == config["hidden_size"] // config["num_attention_heads"]
    types = field("tokenizer.ggml.token_type")
    assert all(types[tokenizer.convert_tokens_to_ids(t)] == 3 for t in ("<|im_start|>", "<|im_end|>"))
    assert "output.weight" in {t.name for t in reader.tensors}  # the tiny model does not tie embeddings


def test_q8_0_matches_the_source_with_q8_0_rounded_weights(exported, source):
    """Exactly what the format allows: the read-back model equals the source after Q8_0 rounding."""
    import copy

    import numpy as np
    import torch
    from gguf import GGMLQuantizationType, quants

    model, tokenizer = source
    rounded = copy.deepcopy(model)
    with torch.no_grad():
        for param in rounded.parameters():
            if param.ndim == 2:
                data = param.numpy().astype(np.float32)
                back = quants.dequantize(
                    quants.quantize(data, GGMLQuantizationType.Q8_0), GGMLQuantizationType.Q8_0
                )
                param.copy_(torch.from_numpy(back.reshape(data.shape)))
    gguf_model, _ = _load(exported, "tiny-q8_0.gguf")
    same = 0
    for text in _prompts(tokenizer):
        ref, got, exact = (_logits(m, tokenizer, text) for m in (model, gguf_model, rounded))
        assert (got - exact).abs().max().item() < 1e-4
        # The tiny random model amplifies weight noise (measured 0.45 on logits up to 6.6);
        # real models far less.
        assert (ref - got).abs().max().item() < 0.15 * ref.abs().max().item()
        ids = tokenizer(text, return_tensors="pt").input_ids
        expected = model.generate(ids, max_new_tokens=8, do_sample=False)
        same += (
            gguf_model.generate(ids, max_new_tokens=8, do_sample=False)[0, : ids.shape[1] + 1].tolist()
            == expected[0, : ids.shape[1] + 1].tolist()
        )
    assert same >= 1  # the first greedy token survives 8-bit rounding


def test_estimate_is_close_to_the_written_size(exported, tiny_model_dir):
    for quant in ("f16", "q8_0"):
        size = (exported / f"tiny-{quant}.gguf").stat().st_size
        assert size <= estimate_gguf_bytes(tiny_model_dir, quant) <= size + 2 * 1024 * 1024


def test_modelfile_for_the_tiny_model(exported, tiny_model_dir):
    path = write_modelfile(exported / "tiny-f16.gguf", tiny_model_dir)
    text = path.read_text()
    assert path == exported / "tiny-f16.Modelfile"
    assert text.startswith("FROM ./tiny-f16.gguf\n")
    assert (
        'TEMPLATE """' in text and "<|im_start|>{{" not in text and "<|im_start|>user\n{{ .Content }}" in text
    )
    assert 'PARAMETER stop "<|im_end|>"' in text
    assert "SYSTEM" not in text  # the tiny template has no default system prompt


def test_unknown_template_is_refused():
    with pytest.raises(ModelError, match="not recognised"):
        template_family("{% for m in messages %}{{ m.content }}{% endfor %}", {"<s>": 1})
    assert template_family(None, {"<|im_start|>": 1, "<|im_end|>": 2}) == "chatml"
    assert template_family("<|start_header_id|>", {}) == "llama3"
    assert template_family("[INST]", {}) == "mistral"


def test_bad_inputs_are_refused(tiny_model_dir, tmp_path):
    other = tmp_path / "gpt2"
    shutil.copytree(tiny_model_dir, other)
    config = json.loads((other / "config.json").read_text())
    config["architectures"] = ["GPT2LMHeadModel"]
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError) as info:
        write_gguf(other, tmp_path / "x.gguf")
    assert all(name in info.value.hint for name in supported_architectures())
    with pytest.raises(ConfigError) as info:
        write_gguf(tiny_model_dir, tmp_path / "x.gguf", "q3_k")
    assert all(quant in info.value.hint for quant in QUANT_TYPES)
    existing = tmp_path / "exists.gguf"
    existing.write_bytes(b"mine")
    with pytest.raises(ModelError, match="already exists"):
        write_gguf(tiny_model_dir, existing)
    assert existing.read_bytes() == b"mine"
    assert write_gguf(tiny_model_dir, existing, overwrite=True).stat().st_size > 1000


def test_cancel_mid_write_leaves_nothing(tiny_model_dir, tmp_path):
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 5

    with pytest.raises(Cancelled):
        write_gguf(tiny_model_dir, tmp_path / "x.gguf", progress=lambda f, m: None, cancel=cancel)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_demo_model_q8_0_answers_like_the_source(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.models.demo import ensure_demo_model

    folder = ensure_demo_model(progress=lambda _msg: None)
    out = write_gguf(folder, tmp_path / "demo-q8_0.gguf", "q8_0")
    modelfile = write_modelfile(out, folder).read_text()
    assert 'PARAMETER stop "<|im_end|>"' in modelfile and 'SYSTEM """You are a helpful' in modelfile
    source = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    # The GGUF tokenizer is checked on the tiny model; loading it here would add ~20 s.
    exported = AutoModelForCausalLM.from_pretrained(
        str(tmp_path), gguf_file=out.name, dtype=torch.float32
    ).eval()
    for question in ("What is the capital of France?", "Name three colours."):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
        ids = tokenizer(text, return_tensors="pt").input_ids
        want = source.generate(ids, max_new_tokens=16, do_sample=False)
        got = exported.generate(ids, max_new_tokens=16, do_sample=False)
        assert tokenizer.decode(got[0, ids.shape[1] :]) == tokenizer.decode(want[0, ids.shape[1] :])


def test_q4_0_reads_back_with_4_bit_rounding_error_only(tiny_model_dir, source, tmp_path):
    """q4_0 is lossy by design: each weight tensor comes back within 4-bit rounding error."""
    model, _ = source
    write_gguf(tiny_model_dir, tmp_path / "tiny-q4_0.gguf", "q4_0")
    back, tokenizer = _load(tmp_path, "tiny-q4_0.gguf")
    ours = dict(back.named_parameters())
    checked = 0
    for name, param in model.named_parameters():
        if param.ndim == 2 and name in ours:
            error = ((ours[name] - param).norm() / param.norm()).item()
            assert error < 0.15, (name, error)  # measured ~0.09 for q4_0 (32 weights per 4-bit block)
            checked += 1
    assert checked >= 7  # every projection of a layer, at least
    ids = tokenizer(_prompts(tokenizer)[0], return_tensors="pt").input_ids
    assert back.generate(ids, max_new_tokens=4, do_sample=False).shape[1] > ids.shape[1]
