"""The memory estimate: its counts against what peft/bitsandbytes really build, and its trends."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from testkit.engine_helpers import tiny_config
from testkit.memory_trace import step_peak_bytes

from engine.errors import ModelError
from engine.models import memory_estimate as me

VOCAB = 400  # tests/support/testkit/tiny_model.py


def estimate(model_dir, data, device="cuda", **overrides):
    config = tiny_config(model_dir, data, **overrides)
    return me.estimate_training_memory(model_dir, config, device), config


def part(est, name) -> int:
    return est.part(name).bytes


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return tmp_path_factory.mktemp("est") / "unused.jsonl"  # the estimate never reads the data


def _real_sizes(model):
    """Bytes of the 4-bit weights + their constants, and of every other frozen parameter."""
    import bitsandbytes as bnb

    quantized, other = 0, 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            w = module.weight
            qs = w.quant_state
            quantized += w.untyped_storage().nbytes() + qs.absmax.untyped_storage().nbytes()
            if qs.state2 is not None:
                quantized += (
                    qs.state2.absmax.untyped_storage().nbytes() + qs.state2.code.untyped_storage().nbytes()
                )
    for param in model.parameters():
        if not param.requires_grad and param.__class__.__name__ != "Params4bit":
            other += param.untyped_storage().nbytes()
    return quantized, other


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"lora__target_modules": ["q_proj", "v_proj"], "lora__rank": 8},
        {"lora__use_dora": True, "lora__rank": 4, "lora__target_modules": ["o_proj", "down_proj"]},
    ],
)
def test_adapter_and_weights_match_what_peft_and_bitsandbytes_build(tiny_model_dir, data_path, overrides):
    from engine.models.loading import load_model
    from engine.training.lora import add_lora

    est, config = estimate(tiny_model_dir, data_path, **overrides)
    model = load_model(config.model, config.quantization, "cpu")
    model = add_lora(model, config.lora, True, 0)
    trainable, _total = model.get_nb_trainable_parameters()
    assert est.adapter_parameters == trainable
    assert part(est, me.ADAPTER) == trainable * 16  # fp32 weight + gradient + two AdamW moments
    quantized, other = _real_sizes(model)
    assert part(est, me.WEIGHTS_4BIT) == pytest.approx(quantized, rel=0.02)
    assert part(est, me.UNQUANTIZED) == other  # fp32 after prepare_model_for_kbit_training


WHOLE = {"training__chunked_loss": False}  # the chunked loss is tested in tests/engine/training


def test_logits_part_is_batch_times_length_times_vocab(tiny_model_dir, data_path):
    est, _ = estimate(tiny_model_dir, data_path, training__batch_size=3, data__max_length=96, **WHOLE)
    assert part(est, me.LOGITS) == 3 * 96 * VOCAB * 14  # bf16 logits under autocast + fp32 loss copies
    est, _ = estimate(
        tiny_model_dir,
        data_path,
        training__batch_size=3,
        data__max_length=96,
        **WHOLE,
        quantization__compute_dtype="fp32",
    )
    assert part(est, me.LOGITS) == 3 * 96 * VOCAB * 16  # fp32 logits, log-softmax and two gradients
    est, _ = estimate(
        tiny_model_dir,
        data_path,
        training__batch_size=3,
        data__max_length=96,
        **WHOLE,
        quantization__load_in_4bit=False,
    )
    assert part(est, me.LOGITS) == 3 * 96 * VOCAB * 14  # bf16 logits under autocast + fp32 loss copies
    assert est.part(me.WEIGHTS_16BIT) is not None and est.part(me.WEIGHTS_4BIT) is None


def test_total_grows_with_batch_length_and_rank(tiny_model_dir, data_path):
    base, _ = estimate(tiny_model_dir, data_path)
    for key, bigger in (("training__batch_size", 8), ("data__max_length", 512), ("lora__rank", 64)):
        grown, _ = estimate(tiny_model_dir, data_path, **{key: bigger})
        assert grown.total_bytes > base.total_bytes, key
    assert sum(p.bytes for p in base.parts) == base.total_bytes
    assert base.tensor_bytes == base.total_bytes - part(base, me.OVERHEAD["cuda"])


def test_gradient_checkpointing_lowers_activations(tiny_model_dir, data_path):
    on, _ = estimate(tiny_model_dir, data_path, training__gradient_checkpointing=True, data__max_length=256)
    off, _ = estimate(tiny_model_dir, data_path, training__gradient_checkpointing=False, data__max_length=256)
    assert part(on, me.ACTIVATIONS) < part(off, me.ACTIVATIONS) / 4
    assert on.total_bytes < off.total_bytes


def test_fits_keeps_a_margin(tiny_model_dir, data_path):
    est, _ = estimate(tiny_model_dir, data_path)
    assert est.fits(est.total_bytes * 2)
    assert not est.fits(est.total_bytes)  # exactly the estimate leaves no spare
    assert est.as_dict()["parts"][0]["name"] == me.WEIGHTS_4BIT


def test_suggestions_biggest_saving_first_with_figures(tiny_model_dir, data_path):
    est, config = estimate(
        tiny_model_dir,
        data_path,
        training__batch_size=64,
        data__max_length=4096,
        training__gradient_checkpointing=False,
    )
    tips = me.suggestions(est, config, free_bytes=2 * 2**30)
    assert tips and all("saves ~" in tip for tip in tips)
    assert any(tip.startswith("training.batch_size 64 → ") for tip in tips)
    assert any(tip.startswith("training.gradient_checkpointing on") for tip in tips)
    assert any("(then fits)" in tip for tip in tips)
    savings = [_saved(tip) for tip in tips]
    assert savings == sorted(savings, reverse=True)


def _saved(tip: str) -> float:
    value, unit = tip.split("saves ~")[1].split()[:2]
    return float(value) * {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[unit.rstrip(";")]


def test_folder_without_config_or_weights_is_a_model_error(tiny_model_dir, data_path, tmp_path):
    config = tiny_config(tiny_model_dir, data_path)
    with pytest.raises(ModelError, match="config.json is missing"):
        me.estimate_training_memory(tmp_path, config)
    shutil.copy(tiny_model_dir / "config.json", tmp_path / "config.json")
    with pytest.raises(ModelError, match="no weights") as info:
        me.estimate_training_memory(tmp_path, config)
    assert info.value.hint


def test_files_are_read_once_and_again_when_they_change(tiny_model_dir, data_path, tmp_path, monkeypatch):
    # The GUI estimates on every settings change: only the first call may read the model's files.
    # (Its cost per call is measured by benchmarks/hot_paths.py.)
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    config = tiny_config(folder, data_path, training__chunked_loss=False)  # logits ∝ vocab
    reads = []
    real_read = me._read_shapes
    monkeypatch.setattr(me, "_read_shapes", lambda *args: reads.append(args[0]) or real_read(*args))
    before = me.estimate_training_memory(folder, config).part(me.LOGITS).bytes
    for _ in range(10):
        assert me.estimate_training_memory(folder, config).part(me.LOGITS).bytes == before
    assert reads == [folder]
    text = (folder / "config.json").read_text().replace(f'"vocab_size": {VOCAB}', '"vocab_size": 800')
    (folder / "config.json").write_text(text + " ")  # a different size: the cache must notice
    assert me.estimate_training_memory(folder, config).part(me.LOGITS).bytes == 2 * before
    assert reads == [folder, folder]


def test_estimate_imports_no_torch(tiny_model_dir, data_path):
    code = (
        "import sys\n"
        "from testkit.engine_helpers import tiny_config\n"
        "import engine.models.memory_estimate as me\n"
        f"c = tiny_config({str(tiny_model_dir)!r}, 'x.jsonl')\n"
        f"e = me.estimate_training_memory({str(tiny_model_dir)!r}, c)\n"
        "me.suggestions(e, c, 2**30)\n"
        "heavy = [m for m in ('torch', 'transformers', 'numpy', 'peft') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    repo = me.__file__.rsplit("/engine/", 1)[0]
    env = {**os.environ, "PYTHONPATH": f"{repo}/tests/support"}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=repo, env=env, timeout=60)


@pytest.mark.parametrize("checkpointing", [True, False])
def test_estimate_matches_an_allocator_trace_of_a_real_cpu_step(tiny_model_dir, data_path, checkpointing):
    import torch

    from engine.models.loading import load_model
    from engine.training.lora import add_lora

    est, config = estimate(
        tiny_model_dir,
        data_path,
        "cpu",
        training__batch_size=4,
        data__max_length=64,
        training__gradient_checkpointing=checkpointing,
    )
    model = add_lora(load_model(config.model, config.quantization, "cpu"), config.lora, checkpointing, 0)
    model.train()
    quantized, other = _real_sizes(model)
    adapter = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    ids = torch.randint(3, VOCAB, (4, 64))
    measured = quantized + other + adapter + step_peak_bytes(model, {"input_ids": ids, "labels": ids})
    assert est.tensor_bytes == pytest.approx(measured, rel=0.25)


def test_the_cpu_weight_cache_costs_its_dequantized_weights_on_the_cpu_only(tiny_model_dir, data_path):
    def cache_bytes(device, setting):
        est, _ = estimate(tiny_model_dir, data_path, device, training__cpu_weight_cache=setting)
        return est, sum(p.bytes for p in est.parts if p.name == me.CPU_CACHE)

    on, on_bytes = cache_bytes("cpu", True)
    off, off_bytes = cache_bytes("cpu", False)
    assert on_bytes == me.read_shapes(tiny_model_dir).linear_params * 4 and off_bytes == 0  # fp32 on the CPU
    assert on.total_bytes > off.total_bytes
    assert cache_bytes("cuda", True)[1] == 0
