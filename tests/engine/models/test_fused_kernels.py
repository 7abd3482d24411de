"""training.fused_kernels: Liger's kernels on CUDA where they apply; transformers' layers elsewhere."""

from __future__ import annotations

import pytest
from testkit.engine_helpers import events_of, train_briefly

import engine.models.fused_kernels as fused_kernels
from engine.config import ConfigError, RunConfig, TrainingConfig
from engine.models import memory_estimate as me
from engine.models.fused_kernels import fused_kernels_plan


@pytest.fixture
def liger_present(monkeypatch):
    monkeypatch.setattr(fused_kernels, "liger_installed", lambda: True)


def test_the_plan_fuses_on_cuda_for_supported_models_with_the_package(liger_present):
    on, why = fused_kernels_plan("auto", "cuda", "llama")
    assert on is True and "RMSNorm, RoPE and SwiGLU" in why
    assert fused_kernels_plan(True, "cuda", "qwen2")[0] is True
    assert fused_kernels_plan(False, "cuda", "llama") == (False, "training.fused_kernels = false")
    on, why = fused_kernels_plan("auto", "cpu", "llama")
    assert on is False and "CUDA" in why
    on, why = fused_kernels_plan("auto", "cuda", "gpt2")
    assert on is False and "gpt2" in why


def test_without_the_package_the_plan_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(fused_kernels, "liger_installed", lambda: False)
    on, why = fused_kernels_plan("auto", "cuda", "llama")
    assert on is False and 'pip install ".[cuda]"' in why


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_the_setting_is_auto_or_a_switch(value):
    with pytest.raises(ConfigError, match=r"training.fused_kernels"):
        TrainingConfig(fused_kernels=value)


def test_the_estimate_drops_the_kept_swiglu_activation_when_fused(tiny_model_dir, liger_present, monkeypatch):
    def activations(setting) -> int:
        config = RunConfig().with_overrides(
            {"training.fused_kernels": setting, "training.gradient_checkpointing": False}
        )
        return me.estimate_training_memory(tiny_model_dir, config, "cuda").part(me.ACTIVATIONS).bytes

    shapes = me.read_shapes(tiny_model_dir)
    assert shapes.model_type == "llama"
    tokens = RunConfig().training.batch_size * RunConfig().data.max_length
    # One bf16 intermediate-sized tensor per token and layer fewer.
    assert activations(False) - activations("auto") == shapes.layers * tokens * 2 * shapes.intermediate
    monkeypatch.setattr(fused_kernels, "liger_installed", lambda: False)
    assert activations("auto") == activations(False)


def test_a_cpu_run_keeps_transformers_layers_and_says_why_when_asked(tiny_model_dir, facts_file, tmp_path):
    train_briefly(
        tiny_model_dir, facts_file, tmp_path / "run", training__max_steps=1, training__fused_kernels=True
    )
    warnings = [e["message"] for e in events_of(tmp_path / "run", "warning")]
    assert "Fused kernels are off: Liger's kernels are Triton kernels for CUDA, not the CPU." in warnings
