"""training.fused_kernels: Liger's kernels on CUDA where they apply; transformers' layers elsewhere."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from testkit.engine_helpers import events_of, train_briefly
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.models.llama.modeling_llama import LlamaRMSNorm, apply_rotary_pos_emb

import engine.models.fused_kernels as fused_kernels
from engine.config import ConfigError, RunConfig, TrainingConfig
from engine.models import memory_estimate as me
from engine.models.fused_kernels import fused_kernels_check, fused_kernels_plan


@pytest.fixture
def liger_present(monkeypatch):
    monkeypatch.setattr(fused_kernels, "liger_installed", lambda: True)
    monkeypatch.setattr(fused_kernels, "triton_build_problem", lambda: None)


def test_without_build_tools_for_triton_the_plan_says_what_is_missing(liger_present, monkeypatch):
    problem = "Triton builds its kernels with a C compiler, and no gcc or clang is on PATH"
    monkeypatch.setattr(fused_kernels, "triton_build_problem", lambda: problem)
    on, why = fused_kernels_plan("auto", "cuda", "llama")
    assert on is False and why == f"Liger's kernels cannot be built here: {problem}"


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


def _stand_in_liger(monkeypatch, swiglu=None, rope=None):
    """A liger_kernel package whose kernels are transformers' own layers (or what a test gives)."""

    class RMSNorm(LlamaRMSNorm):  # LigerRMSNorm(hidden_size, eps)
        pass

    class SiLUMul(torch.autograd.Function):  # only .apply is used
        apply = staticmethod(swiglu or (lambda a, b: torch.nn.functional.silu(a) * b))

    modules = {
        "liger_kernel": {},
        "liger_kernel.ops": {},
        "liger_kernel.ops.swiglu": {"LigerSiLUMulFunction": SiLUMul},
        "liger_kernel.transformers": {},
        "liger_kernel.transformers.rms_norm": {"LigerRMSNorm": RMSNorm},
        "liger_kernel.transformers.rope": {"liger_rotary_pos_emb": rope or apply_rotary_pos_emb},
    }
    for name, attributes in modules.items():
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attributes))


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir):
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.num_key_value_heads = config.num_attention_heads // 2  # grouped-query, as most models now
    return AutoModelForCausalLM.from_config(config)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_check_passes_kernels_that_compute_what_transformers_layers_do(tiny_model, monkeypatch, dtype):
    _stand_in_liger(monkeypatch)
    assert fused_kernels_check(tiny_model.to(dtype), "cpu") is None


def test_the_check_names_a_kernel_that_fails_to_build(tiny_model, monkeypatch):
    def no_compiler(a, b):
        raise RuntimeError("Failed to find C compiler. Please specify via CC environment variable.\nmore")

    _stand_in_liger(monkeypatch, swiglu=no_compiler)
    problem = fused_kernels_check(tiny_model.float(), "cpu")
    assert problem == (
        "its SwiGLU failed: RuntimeError: Failed to find C compiler. "
        "Please specify via CC environment variable."
    )


def test_the_check_names_a_package_that_cannot_be_imported(tiny_model, monkeypatch):
    _stand_in_liger(monkeypatch)
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers.rope", None)  # as a failed import leaves it
    problem = fused_kernels_check(tiny_model.float(), "cpu")
    assert problem.startswith(
        "it cannot be imported: ModuleNotFoundError: import of liger_kernel.transformers.rope halted"
    )


def test_the_check_names_a_kernel_that_computes_wrong_values(tiny_model, monkeypatch):
    def half_turn(q, k, cos, sin):  # rotates by the wrong sign
        return apply_rotary_pos_emb(q, k, cos, -sin)

    _stand_in_liger(monkeypatch, rope=half_turn)
    problem = fused_kernels_check(tiny_model.float(), "cpu")
    assert problem.startswith("its RoPE gives other values than transformers' (Greatest absolute difference")


def test_a_run_whose_kernels_fail_their_check_trains_unfused_and_says_why(
    tiny_model_dir, facts_file, tmp_path, monkeypatch
):
    def broken(a, b):
        raise RuntimeError("ptxas fatal: Value 'sm_120' is not defined for option 'gpu-name'")

    def must_not_patch(model):
        raise AssertionError("a model whose kernels failed their check was patched")

    _stand_in_liger(monkeypatch, swiglu=broken)
    monkeypatch.setattr(fused_kernels, "fused_kernels_plan", lambda *_: (True, "the plan allows them"))
    monkeypatch.setattr(fused_kernels, "apply_fused_kernels", must_not_patch)
    curve = train_briefly(tiny_model_dir, facts_file, tmp_path / "run", training__max_steps=2)
    assert len(curve) == 2
    warnings = [e["message"] for e in events_of(tmp_path / "run", "warning")]
    assert (
        "Fused kernels are off: Liger's kernels failed their check on this machine: its SwiGLU failed: "
        "RuntimeError: ptxas fatal: Value 'sm_120' is not defined for option 'gpu-name'." in warnings
    )
