"""GGUF export of every architecture the writer claims: tiny random Mistral, Qwen2 (attention
biases) and Qwen3 (q/k norms, explicit head_dim) models read back by transformers' GGUF loader."""

from __future__ import annotations

import shutil

import pytest

from engine.export.gguf_write import supported_architectures, write_gguf

DIMS = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    tie_word_embeddings=False,
    initializer_range=0.2,
)


def build_sibling(tiny_model_dir, folder, architecture: str):
    """A random model of `architecture` with the tiny model's tokenizer and chat template."""
    import torch
    import transformers

    family = architecture.removesuffix("ForCausalLM")
    config_cls = getattr(transformers, f"{family}Config")
    # Qwen3's head_dim is its own setting (128 in every released size); transformers' GGUF loader
    # ignores attention.key_length and assumes 128, so the read-back test uses the real value.
    extra = {"head_dim": 128} if family == "Qwen3" else {}
    config = config_cls(
        vocab_size=len(transformers.AutoTokenizer.from_pretrained(str(tiny_model_dir))), **DIMS, **extra
    )
    torch.manual_seed(1)
    model = getattr(transformers, architecture)(config)
    if family == "Qwen2":  # random biases, so a dropped or misplaced bias shows in the logits
        with torch.no_grad():
            for layer in model.model.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                    proj.bias.normal_(0, 0.5)
    model.save_pretrained(str(folder))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        if (tiny_model_dir / name).exists():
            shutil.copy(tiny_model_dir / name, folder / name)
    return model.eval()


@pytest.mark.parametrize("architecture", ["MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"])
def test_f16_gguf_reads_back_with_the_sources_logits(architecture, tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert architecture in supported_architectures()
    source = build_sibling(tiny_model_dir, tmp_path / "model", architecture)
    gguf = write_gguf(tmp_path / "model", tmp_path / "out" / "model-f16.gguf", "f16")
    back = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What colour is a zibble?"}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        want, got = source(ids).logits[0], back(ids).logits[0]
    # f16 storage rounds each weight by ~5e-4 relative: 1% of the largest logit (+0.02) is generous for
    # that and far below what a wrong tensor, bias or layout gives (whole logits).
    assert (want - got).abs().max().item() < 0.01 * want.abs().max().item() + 0.02
    assert torch.equal(want.argmax(-1), got.argmax(-1))
