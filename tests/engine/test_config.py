from __future__ import annotations

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
    path.write_text('[lora]\nrank = 8\nalpha = 16\n[training]\nlearning_rate = 1e-3\nmax_steps = 7\n')
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
        ({"training.gradient_checkpointing": "yes"}, ["training.gradient_checkpointing", "'yes'", "true or false"]),
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
