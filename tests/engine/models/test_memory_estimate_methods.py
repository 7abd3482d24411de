"""The memory estimate per training.method: what each method holds, and the full fine-tuning verdict."""

from __future__ import annotations

import pytest
from testkit.engine_helpers import tiny_config
from testkit.memory_trace import step_peak_bytes

from engine.models import memory_estimate as me


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return tmp_path_factory.mktemp("est") / "unused.jsonl"  # the estimate never reads the data


def estimate(model_dir, data, device="cuda", **overrides):
    config = tiny_config(model_dir, data, **overrides)
    return me.estimate_training_memory(model_dir, config, device), config


def names(est) -> set[str]:
    return {p.name for p in est.parts}


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_full_fine_tuning_holds_every_weight_its_gradient_and_adamw_state(tiny_model_dir, data_path, device):
    sft, _ = estimate(tiny_model_dir, data_path, device)
    full, _ = estimate(tiny_model_dir, data_path, device, training__method="full")
    assert full.tensor_bytes > sft.tensor_bytes and full.total_bytes > sft.total_bytes
    assert me.WEIGHTS_FULL in names(full) and me.TRAINED in names(full)
    assert not names(full) & {me.ADAPTER, me.WEIGHTS_4BIT, me.UNQUANTIZED}
    shapes = me.read_shapes(tiny_model_dir)
    every = shapes.linear_params + shapes.other_params
    weight = 2 if device == "cuda" else 4  # 16-bit on a GPU, fp32 on the CPU
    bf16, _ = estimate(
        tiny_model_dir, data_path, device, training__method="full", quantization__compute_dtype="bf16"
    )
    assert bf16.part(me.WEIGHTS_FULL).bytes == every * weight  # the CPU trains full in fp32 whatever is set
    assert full.part(me.WEIGHTS_FULL).bytes == every * weight
    assert full.adapter_parameters == every
    # A gradient and AdamW's m and v, all in the weights' dtype (torch keeps the moments in it).
    assert full.part(me.TRAINED).bytes == every * 3 * weight


def test_chosen_layers_train_only_their_linears(tiny_model_dir, data_path):
    all_layers, _ = estimate(tiny_model_dir, data_path, training__method="full")
    one, _ = estimate(tiny_model_dir, data_path, training__method="full", training__full_layers="1")
    shapes = me.read_shapes(tiny_model_dir)
    in_layer_1 = sum(o * i for m, o, i in shapes.linears if ".1." in m)
    assert one.adapter_parameters == in_layer_1
    assert one.part(me.TRAINED).bytes < all_layers.part(me.TRAINED).bytes
    assert one.part(me.WEIGHTS_FULL).bytes == all_layers.part(me.WEIGHTS_FULL).bytes  # all weights still load


def test_pairs_double_the_activations_and_dpo_adds_the_reference_forward(tiny_model_dir, data_path):
    whole = {"training__chunked_loss": False, "training__gradient_checkpointing": False}
    sft, _ = estimate(tiny_model_dir, data_path, **whole)
    orpo, _ = estimate(tiny_model_dir, data_path, training__method="orpo", **whole)
    dpo, _ = estimate(tiny_model_dir, data_path, training__method="dpo", **whole)
    kto, _ = estimate(tiny_model_dir, data_path, training__method="kto", **whole)
    for name in (me.ACTIVATIONS, me.LOGITS):
        assert orpo.part(name).bytes == 2 * sft.part(name).bytes  # chosen + rejected per row
        assert kto.part(name).bytes == sft.part(name).bytes  # one completion with gradients
    assert me.REFERENCE not in names(orpo) and me.REFERENCE not in names(sft)
    assert dpo.part(me.REFERENCE).bytes > 0 and kto.part(me.REFERENCE).bytes > 0
    assert dpo.total_bytes > orpo.total_bytes > sft.total_bytes
    assert dpo.part(me.ADAPTER) == sft.part(me.ADAPTER)  # the reference is the base with the adapter off


def test_prompt_tuning_keeps_the_4bit_base_and_trains_only_virtual_tokens(tiny_model_dir, data_path):
    sft, _ = estimate(tiny_model_dir, data_path)
    prompt, config = estimate(tiny_model_dir, data_path, training__method="prompt_tuning")
    hidden = me.read_shapes(tiny_model_dir).hidden
    assert prompt.part(me.WEIGHTS_4BIT) == sft.part(me.WEIGHTS_4BIT)
    assert prompt.adapter_parameters == config.training.prompt_tuning_tokens * hidden
    assert prompt.part(me.SOFT_PROMPT).bytes == prompt.adapter_parameters * 16
    assert me.ADAPTER not in names(prompt)


def test_full_fine_tuning_that_does_not_fit_says_so_and_points_to_lora(tiny_model_dir, data_path):
    full, config = estimate(tiny_model_dir, data_path, training__method="full")
    sft, _ = estimate(tiny_model_dir, data_path)
    free = int(sft.total_bytes / 0.95) + 1  # just enough for LoRA (with the 5% margin), not for full
    assert not full.fits(free) and sft.fits(free)
    line = me.full_shortfall(full, config, free)
    assert line.startswith("Full fine-tuning needs ~")
    assert "use LoRA (training.method sft" in line and "which fits" in line
    assert me.full_shortfall(full, config, 100 * full.total_bytes) == ""  # it fits: nothing to say
    assert me.full_shortfall(sft, config.with_overrides({"training.method": "sft"}), 1) == ""


@pytest.mark.parametrize("checkpointing", [True, False])
def test_full_estimate_matches_an_allocator_trace_of_a_real_cpu_step(
    tiny_model_dir, data_path, checkpointing
):
    import torch

    from engine.training.full_finetune import load_full_model

    est, config = estimate(
        tiny_model_dir,
        data_path,
        "cpu",
        training__method="full",
        training__batch_size=4,
        data__max_length=64,
        training__gradient_checkpointing=checkpointing,
    )
    model = load_full_model(config.model, config.quantization, "cpu", "all", checkpointing)
    model.train()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    ids = torch.randint(3, 400, (4, 64))
    measured = weights + step_peak_bytes(model, {"input_ids": ids, "labels": ids}, warm=True)
    assert est.tensor_bytes == pytest.approx(measured, rel=0.1)  # measured: within 0.1% and 3%


def test_a_run_that_starts_from_an_adapter_counts_that_adapter_not_the_lora_settings(
    tiny_model_dir, data_path, short_run
):
    import json

    from safetensors import safe_open

    with safe_open(str(short_run / "adapter" / "adapter_model.safetensors"), "np") as weights:
        real = sum(
            weights.get_slice(k).get_shape()[0] * weights.get_slice(k).get_shape()[1] for k in weights.keys()
        )
    rank = json.loads((short_run / "adapter" / "adapter_config.json").read_text())["r"]
    other = 4 if rank != 4 else 8
    fresh, _ = estimate(tiny_model_dir, data_path, training__method="dpo", lora__rank=other)
    start, _ = estimate(
        tiny_model_dir,
        data_path,
        training__method="dpo",
        lora__rank=other,
        training__init_adapter=str(short_run),
    )
    assert start.adapter_parameters == real != fresh.adapter_parameters
    assert f"the starting adapter's rank {rank}" in start.part(me.ADAPTER).detail
    # dpo's reference is then a frozen fp32 copy of that adapter.
    assert "the starting adapter's copy" in start.part(me.REFERENCE).detail
    missing, _ = estimate(
        tiny_model_dir, data_path, training__method="dpo", training__init_adapter="/nowhere"
    )
    assert missing.adapter_parameters > 0  # unreadable: the lora settings' count (the run says what is wrong)
