from __future__ import annotations

import dataclasses

import pytest

from engine.config import RunConfig, config_to_toml, load_config
from engine.errors import ConfigError


def test_defaults_are_valid_and_round_trip_through_toml(tmp_path):
    config = RunConfig()
    path = tmp_path / "c.toml"
    path.write_text(config_to_toml(config))
    assert load_config(path) == config


def test_toml_values_are_read_into_their_groups(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[lora]\nrank = 8\nalpha = 16\n[training]\nlearning_rate = 1e-3\nmax_steps = 7\n")
    config = load_config(path)
    assert (config.lora.rank, config.lora.alpha, config.training.max_steps) == (8, 16.0, 7)
    assert isinstance(config.lora.alpha, float)


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ({"lora.rank": 0}, ["lora.rank", "0", "integer from 1"]),
        ({"lora.dropout": 1.5}, ["lora.dropout", "1.5", "[0.0, 0.9]"]),
        ({"training.learning_rate": -1.0}, ["training.learning_rate", "-1.0"]),
        ({"training.batch_size": 2.5}, ["training.batch_size", "2.5", "integer"]),
        ({"quantization.quant_type": "int3"}, ["quantization.quant_type", "'int3'", "nf4, fp4"]),
        ({"data.format": "csv"}, ["data.format", "'csv'", "messages"]),
        ({"lora.target_modules": []}, ["lora.target_modules", "[]"]),
        (
            {"training.gradient_checkpointing": "yes"},
            ["training.gradient_checkpointing", "'yes'", "true or false"],
        ),
        ({"data.validation_ratio": 0.7}, ["data.validation_ratio", "0.7", "a number in [0.0, 0.5]"]),
        ({"data.validation_ratio": "half"}, ["data.validation_ratio", "'half'", '"auto"']),
        ({"training.early_stopping_patience": -1}, ["training.early_stopping_patience", "-1", "0 to 1000"]),
        ({"training.early_stopping_patience": 1.5}, ["training.early_stopping_patience", "integer"]),
        ({"training.early_stopping_min_delta": -0.1}, ["training.early_stopping_min_delta", "[0.0, 10.0]"]),
        ({"training.final_adapter": "first"}, ["training.final_adapter", "'first'", "best, last"]),
        ({"training.neftune_alpha": -5.0}, ["training.neftune_alpha", "-5.0", "[0.0, 100.0]"]),
    ],
)
def test_bad_values_name_field_value_and_allowed_range(override, words):
    with pytest.raises(ConfigError) as info:
        RunConfig().with_overrides(override)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_unknown_keys_and_sections_are_refused(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[training]\nlearning_rat = 1e-4\n")
    with pytest.raises(ConfigError, match="training.learning_rat is not a setting"):
        load_config(path)
    path.write_text("[optimizer]\nname = 'adam'\n")
    with pytest.raises(ConfigError, match=r"Unknown config section \[optimizer\]"):
        load_config(path)


def test_invalid_toml_and_missing_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[training\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_every_setting_has_help_text_from_its_docstring():
    from engine.config import _GROUPS, field_help

    help_texts = field_help()
    for group, cls in _GROUPS.items():
        for f in dataclasses.fields(cls):
            assert help_texts.get(f"{group}.{f.name}"), f"{group}.{f.name} has no docstring"
    assert "memory" in help_texts["training.batch_size"]


def test_field_errors_names_every_invalid_setting_with_the_engines_message():
    from engine.config import field_errors

    raw = RunConfig().to_dict()
    raw["training"]["batch_size"] = 0
    raw["lora"]["rank"] = "x"
    raw["data"]["max_length"] = 4
    errors = field_errors(raw)
    assert set(errors) == {"training.batch_size", "lora.rank", "data.max_length"}
    assert "from 1 to 4096" in errors["training.batch_size"]
    assert field_errors(RunConfig().to_dict()) == {}


def test_presets_are_valid_partial_configs_that_keep_the_users_model_and_data():
    from engine.training.presets import list_presets

    presets = list_presets()
    assert [p.name for p in presets] == ["Quick test", "Balanced", "Quality"]
    mine = RunConfig().with_overrides({"model.path": "/models/x", "data.path": "/data/y.jsonl"})
    for preset in presets:
        applied = preset.apply(mine)
        assert applied.model.path == "/models/x" and applied.data.path == "/data/y.jsonl"
        assert preset.matches(applied) and preset.description
    assert presets[0].apply(mine).training.max_steps == 30
    assert presets[2].apply(mine).lora.rank > presets[1].apply(mine).lora.rank


def test_validation_is_auto_by_default_and_an_old_config_with_zero_keeps_it_off(tmp_path):
    assert RunConfig().data.validation_ratio == "auto"
    assert 'validation_ratio = "auto"' in config_to_toml(RunConfig())
    old = tmp_path / "old.toml"
    old.write_text("[data]\nvalidation_ratio = 0.0\n[training]\neval_every = 0\n")
    assert load_config(old).data.validation_ratio == 0.0
    old.write_text("[data]\nvalidation_ratio = 0\n")  # TOML's integer 0 is the same setting
    assert load_config(old).data.validation_ratio == 0.0
    new = RunConfig().training
    assert (new.early_stopping_patience, new.final_adapter, new.neftune_alpha) == (0, "best", 0.0)
