"""CUDA checks: skipped without a GPU (run them on one whenever it is available)."""

from __future__ import annotations

import pytest
import torch
from testkit.engine_helpers import losses, states, tiny_config

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
    from engine.runs.events import read_events

    def run(name: str, offload: bool) -> tuple[dict, float]:
        config = tiny_config(
            tiny_model_dir,
            facts_file,
            training__max_steps=4,
            training__gradient_checkpointing=False,
            training__activation_offload=offload,
            data__max_length=256,
            data__validation_ratio=0.0,
        )
        assert train(config, tmp_path / name).state == "done"
        metrics = [e for e in read_events(tmp_path / name / "events.jsonl") if e["type"] == "metrics"]
        return losses(tmp_path / name), max(m["peak_memory_mb"] for m in metrics)

    kept, kept_peak = run("kept", False)
    offloaded, offloaded_peak = run("offloaded", True)
    assert offloaded == pytest.approx(kept, rel=1e-3)  # the same values, only stored elsewhere
    assert offloaded_peak < kept_peak
