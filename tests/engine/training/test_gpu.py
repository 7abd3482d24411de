"""CUDA checks: skipped without a GPU (run them on one whenever it is available)."""

from __future__ import annotations

import pytest
import torch
from testkit.engine_helpers import events_of, losses, states, tiny_config, train_briefly

from engine.config import ModelConfig, QuantizationConfig
from engine.models.loading import load_model, resolve_compute_dtype
from engine.training.recipe import train

pytestmark = pytest.mark.gpu


def test_cuda_loads_nf4_with_bf16_or_fp16_compute(tiny_model_dir):
    import bitsandbytes as bnb

    model = load_model(ModelConfig(path=str(tiny_model_dir)), QuantizationConfig(), device="cuda")
    proj = model.model.layers[0].self_attn.q_proj
    assert isinstance(proj, bnb.nn.Linear4bit) and proj.weight.device.type == "cuda"
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert resolve_compute_dtype("auto", "cuda") == expected
    assert proj.compute_dtype == expected


def test_cuda_training_learns_and_reports_gpu_memory(tiny_model_dir, facts_file, tmp_path):
    config = tiny_config(tiny_model_dir, facts_file, training__max_steps=60, training__save_every=30)
    result = train(config, tmp_path / "run")
    assert result.state == "done" and states(tmp_path / "run")[-1] == "done"
    curve = losses(tmp_path / "run")
    assert curve[60] < curve[1] * 0.5
    from engine.runs.events import read_events

    metrics = [e for e in read_events(tmp_path / "run" / "events.jsonl") if e["type"] == "metrics"]
    assert metrics[-1]["memory_kind"] == "cuda_allocated" and metrics[-1]["peak_memory_mb"] > 0


def test_activation_offload_lowers_the_gpu_peak_and_trains_the_same(tiny_model_dir, facts_file, tmp_path):
    def run(name: str, offload: bool) -> tuple[dict, float]:
        curve = train_briefly(
            tiny_model_dir,
            facts_file,
            tmp_path / name,
            training__max_steps=4,
            training__gradient_checkpointing=False,
            training__activation_offload=offload,
            data__max_length=256,
        )
        return curve, max(m["peak_memory_mb"] for m in events_of(tmp_path / name, "metrics"))

    kept, kept_peak = run("kept", False)
    offloaded, offloaded_peak = run("offloaded", True)
    assert offloaded == pytest.approx(kept, rel=1e-3)  # the same values, only stored elsewhere
    assert offloaded_peak < kept_peak


def test_fused_kernels_train_the_same_step_within_rounding(tiny_model_dir):
    """Liger's RMSNorm, RoPE and SwiGLU against transformers' layers: loss and LoRA gradients."""
    pytest.importorskip("liger_kernel", reason='liger-kernel is not installed (pip install ".[cuda]")')
    from engine.config import LoraConfig
    from engine.models.fused_kernels import apply_fused_kernels
    from engine.training.lora import add_lora

    def step(fused: bool):
        torch.manual_seed(0)
        model = load_model(ModelConfig(path=str(tiny_model_dir)), QuantizationConfig(), device="cuda")
        if fused:
            apply_fused_kernels(model)
        model = add_lora(model, LoraConfig(rank=8, alpha=16.0, dropout=0.0), False, 0)
        for name, param in model.named_parameters():
            if "lora_B" in name:  # non-zero B, so A's gradients are not all zero
                torch.nn.init.normal_(param, std=0.02)
        ids = torch.randint(5, 300, (2, 48), device="cuda")
        with torch.autocast("cuda", dtype=resolve_compute_dtype("auto", "cuda")):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        grads = {n: p.grad.float().clone() for n, p in model.named_parameters() if p.requires_grad}
        return loss.item(), grads

    loss, grads = step(False)
    fused_loss, fused_grads = step(True)
    assert fused_loss == pytest.approx(loss, rel=1e-2)
    for name, grad in grads.items():
        diff = (fused_grads[name] - grad).norm() / grad.norm().clamp_min(1e-8)
        assert diff < 0.05, name


def test_flex_attention_packs_by_default_on_cuda_and_trains_like_sdpa(tiny_model_dir, facts_file, tmp_path):
    sdpa = train_briefly(tiny_model_dir, facts_file, tmp_path / "sdpa")
    flex = train_briefly(tiny_model_dir, facts_file, tmp_path / "flex", training__attention="flex_attention")
    [model] = events_of(tmp_path / "flex", "model")
    assert model["padding_free"] is True  # "auto" packs with an attention that needs no dense mask
    assert flex == pytest.approx(sdpa, rel=2e-2)  # bf16 on both sides


def test_triton_builds_here_and_liger_passes_its_check_on_this_gpu(tiny_model_dir):
    """What the recipe checks before it patches a model: the kernels build and agree on this GPU."""
    pytest.importorskip("liger_kernel", reason='liger-kernel is not installed (pip install ".[cuda]")')
    from engine.models.fused_kernels import fused_kernels_check
    from engine.util.triton_build import triton_build_problem

    assert triton_build_problem() is None
    model = load_model(ModelConfig(path=str(tiny_model_dir)), QuantizationConfig(), device="cuda")
    assert fused_kernels_check(model, "cuda") is None
