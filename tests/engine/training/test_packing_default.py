"""training.padding_free = "auto": packed batches where they are exact and pay, padded elsewhere."""

from __future__ import annotations

import types

import pytest
from testkit.engine_helpers import losses, tiny_config

from engine.config import RunConfig, config_to_toml, load_config
from engine.errors import ConfigError
from engine.models.memory_estimate import estimate_training_memory
from engine.models.packing import padding_free_plan
from engine.runs.events import EventLog, read_events
from engine.training.distributed import Ranks
from engine.training.recipe import TrainingRecipe, train


def _events(run_dir, kind: str) -> list[dict]:
    return [e for e in read_events(run_dir / "events.jsonl") if e["type"] == kind]


def test_the_default_pads_on_the_cpu_where_padding_measured_faster_and_the_run_records_why(
    tiny_model_dir, facts_file, tmp_path
):
    assert RunConfig().training.padding_free == "auto"
    config = tiny_config(tiny_model_dir, facts_file, training__max_steps=1)
    train(config, tmp_path / "run")
    assert 'padding_free = "auto"' in (tmp_path / "run" / "config.toml").read_text()
    [model] = _events(tmp_path / "run", "model")
    assert model["padding_free"] is False and '"auto" on the CPU' in model["padding_free_reason"]
    infos = [e["message"] for e in _events(tmp_path / "run", "info")]
    assert any(m.startswith("Padding-free batches off:") for m in infos), infos
    assert padding_free_plan("auto", "cuda", "flash_attention_2")[0] is True
    assert padding_free_plan("auto", "cuda", "sdpa")[0] is False


def test_auto_falls_back_to_padded_batches_where_packing_is_not_exact(
    tiny_model_dir, facts_file, tmp_path, monkeypatch
):
    import engine.data.prepare as prepare
    import engine.models.packing as packing
    import engine.training.trainer as trainer

    # As on a GPU with flash attention, where "auto" packs: the exactness check still decides.
    monkeypatch.setattr(packing, "padding_free_plan", lambda setting, device, attention=None: (True, "packs"))
    monkeypatch.setattr(trainer, "packing_is_exact", lambda model, rows, pad_token_id: False)
    packed_batches = []
    real = prepare.PaddingFreeCollator.__call__
    monkeypatch.setattr(
        prepare.PaddingFreeCollator, "__call__", lambda self, f: packed_batches.append(1) or real(self, f)
    )
    train(tiny_config(tiny_model_dir, facts_file, training__max_steps=1), tmp_path / "run")
    [model] = _events(tmp_path / "run", "model")
    assert model["padding_free"] is False and "mixes packed sequences" in model["padding_free_reason"]
    assert packed_batches == []  # every batch was padded
    # "auto" says what it chose; only a refused `true` is a warning.
    assert not any("padding-free" in w["message"] for w in _events(tmp_path / "run", "warning"))
    assert any("padding-free batches are off" in e["message"] for e in _events(tmp_path / "run", "info"))


def test_old_config_files_keep_their_switch_and_bad_values_get_one_line(tmp_path):
    for text, expected in (("false", False), ("true", True), ('"auto"', "auto")):
        path = tmp_path / f"{expected}.toml"
        path.write_text(f"[training]\npadding_free = {text}\n")
        assert load_config(path).training.padding_free == expected
        assert type(load_config(path).training.padding_free) is type(expected)
    assert padding_free_plan(False, "cpu") == (False, "training.padding_free = false")
    assert padding_free_plan(True, "cuda")[0] is True  # forced, as before (still checked for exactness)
    for bad in ("yes", 1, "Auto"):
        with pytest.raises(ConfigError) as caught:
            RunConfig().with_overrides({"training.padding_free": bad})
        assert caught.value.message.count("\n") == 0
        assert '"auto", true or false' in caught.value.message


def test_padding_free_false_in_a_run_means_padded_without_checking(
    tiny_model_dir, facts_file, tmp_path, monkeypatch
):
    import engine.training.trainer as trainer

    def no_check(*_args):
        raise AssertionError("packing is not checked when it is off")

    monkeypatch.setattr(trainer, "packing_is_exact", no_check)
    path = tmp_path / "old.toml"
    config = tiny_config(tiny_model_dir, facts_file, training__max_steps=1, training__padding_free=False)
    path.write_text(config_to_toml(config))  # as a run written before "auto" has it
    assert "padding_free = false" in path.read_text()
    train(load_config(path), tmp_path / "run")
    [model] = _events(tmp_path / "run", "model")
    assert model["padding_free"] is False and model["padding_free_reason"] == "training.padding_free = false"


def _recipe_on_cuda(attention: str) -> tuple[TrainingRecipe, list[dict]]:
    recipe = TrainingRecipe(RunConfig(), ranks=Ranks())
    events: list[dict] = []
    recipe.log = EventLog(None, echo=events.append)
    recipe.device = "cuda"
    recipe.model = types.SimpleNamespace(config=types.SimpleNamespace(_attn_implementation=attention))
    return recipe, events


def test_auto_on_cuda_packs_only_with_an_attention_that_needs_no_dense_mask(monkeypatch):
    import engine.training.trainer as trainer

    monkeypatch.setattr(trainer, "packing_is_exact", lambda *_args: True)
    recipe, events = _recipe_on_cuda("sdpa")
    recipe.data, recipe.tokenizer = types.SimpleNamespace(train=[]), types.SimpleNamespace(pad_token_id=0)
    packed, why = recipe._decide_padding_free(recipe.model)
    assert packed is False and "dense mask" in why
    assert events[-1]["padding_free"] is False and "off" in events[-1]["message"]
    for attention in ("flash_attention_2", "flex_attention"):
        recipe, _ = _recipe_on_cuda(attention)
        recipe.data, recipe.tokenizer = types.SimpleNamespace(train=[]), types.SimpleNamespace(pad_token_id=0)
        assert recipe._decide_padding_free(recipe.model)[0] is True


def test_the_memory_estimate_decides_auto_as_the_recipe_does(tiny_model_dir):
    def estimate(setting, device):
        config = RunConfig().with_overrides({"training.padding_free": setting, "training.batch_size": 8})
        return estimate_training_memory(tiny_model_dir, config, device).total_bytes

    # On CUDA with SDPA a packed batch carries a (B·L)² mask: "auto" pads there.
    assert estimate("auto", "cuda") == estimate(False, "cuda") < estimate(True, "cuda")
    assert estimate("auto", "cpu") == estimate(False, "cpu")  # and on the CPU (padded measured faster)


@pytest.mark.slow  # two short real runs
def test_a_short_run_has_the_same_losses_packed_and_padded(tiny_model_dir, facts_file, tmp_path):
    runs = {}
    for setting in (True, False):
        # No dropout: its masks follow the batch's shape, so they differ between padded and packed batches.
        config = tiny_config(
            tiny_model_dir,
            facts_file,
            training__max_steps=2,
            training__padding_free=setting,
            lora__dropout=0.0,
        )
        train(config, tmp_path / str(setting))
        runs[setting] = losses(tmp_path / str(setting))
        [model] = _events(tmp_path / str(setting), "model")
        assert model["padding_free"] is setting
    for step in (1, 2):
        assert runs[True][step] == pytest.approx(runs[False][step], rel=1e-4)
