"""training.attention: sdpa, flex_attention or eager; flex takes packed batches without a dense mask."""

from __future__ import annotations

import pytest
from testkit.engine_helpers import events_of, train_briefly

from engine.config import ConfigError, RunConfig, TrainingConfig
from engine.models import memory_estimate as me


def test_the_setting_names_an_implementation_the_engine_offers():
    assert TrainingConfig().attention == "sdpa"
    with pytest.raises(ConfigError, match=r"training.attention.*sdpa, flex_attention, eager"):
        TrainingConfig(attention="flash_attention_2")  # its kernels do not install from the package index


@pytest.fixture
def triton_builds(monkeypatch):
    import engine.models.packing as packing

    monkeypatch.setattr(packing, "triton_build_problem", lambda: None)


def test_with_flex_attention_auto_packs_on_cuda_and_no_dense_mask_is_counted(tiny_model_dir, triton_builds):
    def total(attention: str, padding_free) -> int:
        config = RunConfig().with_overrides(
            {"training.attention": attention, "training.padding_free": padding_free, "training.batch_size": 8}
        )
        return me.estimate_training_memory(tiny_model_dir, config, "cuda").total_bytes

    assert total("flex_attention", "auto") == total("flex_attention", True)  # packs
    assert total("sdpa", "auto") == total("sdpa", False)  # pads: a packed batch would carry a (B·L)² mask
    assert total("flex_attention", True) < total("sdpa", True)


def test_flex_attention_on_cuda_without_build_tools_for_triton_trains_with_sdpa(monkeypatch):
    import engine.models.packing as packing

    problem = (
        "Triton builds its kernels against Python's headers, and /usr/include/python3.11/Python.h is missing"
    )
    monkeypatch.setattr(packing, "triton_build_problem", lambda: problem)
    assert packing.training_attention("flex_attention", "cuda") == (
        "sdpa",
        f"flex attention is compiled by Triton, which cannot build here: {problem}",
    )
    assert packing.training_attention("sdpa", "cuda")[0] == "sdpa"
    monkeypatch.setattr(packing, "triton_build_problem", lambda: None)
    assert packing.training_attention("flex_attention", "cuda")[0] == "flex_attention"


def _run(tiny_model_dir, facts_file, path, **overrides) -> dict:
    return train_briefly(tiny_model_dir, facts_file, path, lora__dropout=0.0, **overrides)


def test_an_eager_run_trains_like_an_sdpa_run(tiny_model_dir, facts_file, tmp_path):
    sdpa = _run(tiny_model_dir, facts_file, tmp_path / "sdpa")
    eager = _run(tiny_model_dir, facts_file, tmp_path / "eager", training__attention="eager")
    assert eager == pytest.approx(sdpa, rel=1e-4)


def test_flex_attention_on_the_cpu_trains_with_sdpa_and_says_why(tiny_model_dir, facts_file, tmp_path):
    _run(
        tiny_model_dir,
        facts_file,
        tmp_path / "flex",
        training__attention="flex_attention",
        training__max_steps=1,
    )
    warnings = [e["message"] for e in events_of(tmp_path / "flex", "warning")]
    assert (
        "Attention: sdpa instead of flex_attention: flex attention cannot train on the CPU (no backward pass "
        "there)." in warnings
    )
