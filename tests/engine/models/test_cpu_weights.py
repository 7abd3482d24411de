"""The CPU weight cache: the 4-bit base dequantized once gives the same training step, only faster."""

from __future__ import annotations

import pytest

from engine.config import LoraConfig, ModelConfig, QuantizationConfig
from engine.models.cpu_weights import (
    cache_dequantized_weights,
    cpu_weight_cache_plan,
    dequantized_bytes,
    four_bit_layers,
)


def _lora_model(tiny_model_dir, load_in_4bit=True):
    from engine.models.loading import load_model
    from engine.training.lora import add_lora

    model = load_model(
        ModelConfig(path=str(tiny_model_dir)), QuantizationConfig(load_in_4bit=load_in_4bit), "cpu"
    )
    return add_lora(model, LoraConfig(rank=8, alpha=16.0, dropout=0.0), gradient_checkpointing=False, seed=0)


def _step(model):
    """Loss and every LoRA gradient of one training step on a fixed batch."""
    import torch

    model.train()
    model.zero_grad()
    ids = torch.arange(3, 43).reshape(2, 20) % 200
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return loss.item(), grads


def test_a_cached_base_trains_exactly_like_the_4_bit_one(tiny_model_dir):
    import torch

    model = _lora_model(tiny_model_dir)
    torch.manual_seed(0)
    for name, p in model.named_parameters():  # a trained-looking adapter: LoRA A gets gradients too
        if "lora_B" in name:
            p.data.normal_(0, 0.05)
    before, grads_before = _step(model)
    layers = cache_dequantized_weights(model)
    assert layers == len(four_bit_layers(model)) > 0
    after, grads_after = _step(model)
    assert after == before
    assert grads_after.keys() == grads_before.keys()
    assert any("lora_A" in name and grad.abs().sum() > 0 for name, grad in grads_before.items())
    for name, grad in grads_before.items():
        assert torch.equal(grads_after[name], grad), name
    # The 4-bit weight and its quant state are untouched: peft, saving and the fit check see the same model.
    assert all(layer.weight.dtype == torch.uint8 for layer in four_bit_layers(model))


def test_the_plan_caches_on_the_cpu_when_the_weights_fit(tiny_model_dir):
    model = _lora_model(tiny_model_dir)
    need = dequantized_bytes(model)
    assert need > 0
    assert cpu_weight_cache_plan("auto", "cpu", model, free=100 * need)[0]
    cached, why = cpu_weight_cache_plan("auto", "cpu", model, free=2 * need)
    assert not cached and "more than a quarter" in why
    assert cpu_weight_cache_plan(True, "cpu", model, free=2 * need)[0]  # asked for: the user knows the RAM
    assert cpu_weight_cache_plan(False, "cpu", model, free=100 * need) == (
        False,
        "training.cpu_weight_cache = false",
    )
    cached, why = cpu_weight_cache_plan("auto", "cuda", model, free=100 * need)
    assert not cached and "stay 4-bit" in why
    plain = _lora_model(tiny_model_dir, load_in_4bit=False)
    assert cpu_weight_cache_plan(True, "cpu", plain)[0] is False


def test_a_run_says_whether_it_cached_the_weights(short_run):
    from engine.runs.events import read_events

    [event] = [e for e in read_events(short_run / "events.jsonl") if "cpu_weight_cache" in e]
    assert event["cpu_weight_cache"] is True and "CPU weight cache on" in event["message"]


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_the_setting_is_auto_or_a_switch(value):
    from engine.config import TrainingConfig
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match=r"training.cpu_weight_cache"):
        TrainingConfig(cpu_weight_cache=value)
