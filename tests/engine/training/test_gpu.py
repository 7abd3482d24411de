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
