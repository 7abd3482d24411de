"""The 4-bit path: real bitsandbytes layers, and LoRA gradients that survive an eval forward."""

from __future__ import annotations

import bitsandbytes as bnb
import pytest
import torch

from engine.config import LoraConfig, ModelConfig, QuantizationConfig
from engine.models.loading import load_model
from engine.training.lora import add_lora

IDS = torch.tensor([[3, 17, 42, 8, 99, 150, 7, 2], [5, 5, 60, 61, 62, 63, 64, 2]])


def lora_model(model_dir, seed=0):
    model = load_model(ModelConfig(path=str(model_dir)), QuantizationConfig(), device="cpu")
    model = add_lora(model, LoraConfig(rank=8, dropout=0.0), gradient_checkpointing=False, seed=seed)
    generator = torch.Generator().manual_seed(1)
    for name, param in model.named_parameters():
        if "lora_B" in name:  # non-zero B so that A receives gradients as well
            param.data = torch.randn(param.shape, generator=generator) * 0.1
    return model


def lora_grads(model):
    model.zero_grad()
    model.train()
    model(input_ids=IDS, labels=IDS).loss.backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def dequantized_reference(model_dir):
    """The same LoRA model with every 4-bit base layer replaced by a float Linear of its
    dequantized weight."""
    model = lora_model(model_dir)
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, bnb.nn.Linear4bit):
                weight = bnb.functional.dequantize_4bit(child.weight.data, child.weight.quant_state).float()
                linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
                linear.weight = torch.nn.Parameter(weight, requires_grad=False)
                setattr(module, child_name, linear)
    return model


def relative_error(got, want):
    return max(((got[n] - want[n]).norm() / want[n].norm()).item() for n in want)


def test_projections_are_bitsandbytes_4bit_and_cpu_repacking_is_off(tiny_model_dir):
    model = load_model(ModelConfig(path=str(tiny_model_dir)), QuantizationConfig(), device="cpu")
    layer = model.model.layers[0]
    for proj in (layer.self_attn.q_proj, layer.self_attn.v_proj, layer.mlp.down_proj):
        assert isinstance(proj, bnb.nn.Linear4bit)
        assert proj.weight.quant_state.quant_type == "nf4"
        assert proj.weight.quant_state.nested  # double quantization
        assert proj.support_avx512bf16_for_cpu is False


def test_lora_gradients_after_an_eval_forward_match_the_dequantized_reference(tiny_model_dir):
    reference = lora_grads(dequantized_reference(tiny_model_dir))
    model = lora_model(tiny_model_dir)
    before = lora_grads(model)
    model.eval()
    with torch.no_grad():  # what Trainer's evaluation does mid-run
        model(input_ids=IDS)
    after = lora_grads(model)
    assert relative_error(before, reference) < 1e-3
    assert relative_error(after, reference) < 1e-3


@pytest.mark.skipif(
    not bnb.functional.has_avx512bf16(), reason="the repacking hazard needs a CPU with AVX512-BF16"
)
def test_the_gradient_check_detects_the_repacking_hazard(tiny_model_dir):
    """Positive control: with repacking re-enabled the same check must fail on such CPUs."""
    reference = lora_grads(dequantized_reference(tiny_model_dir))
    model = lora_model(tiny_model_dir)
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = True
    model.eval()
    with torch.no_grad():
        model(input_ids=IDS)
    assert relative_error(lora_grads(model), reference) > 1e-2
