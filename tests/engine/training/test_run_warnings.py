"""Warnings before a run: settings that will likely overfit, each saying what to change."""

from __future__ import annotations

from testkit.tiny_model import fact_rows, write_jsonl

from engine.config import RunConfig
from engine.training.presets import list_presets
from engine.training.run_warnings import count_rows, implied_epochs, run_warnings


def balanced(**overrides) -> RunConfig:
    config = next(p for p in list_presets() if p.name == "Balanced").apply(RunConfig())
    return config.with_overrides(overrides)


def codes(warnings) -> list[str]:
    return [w.code for w in warnings]


def test_sane_settings_give_no_warning():
    assert run_warnings(balanced(), train_rows=1000, validation_rows=100) == []


def test_steps_that_make_many_epochs_warn_with_a_step_count_to_use_instead():
    # The old demo: 60 steps of batch 4 on 34 rows is about 7 epochs.
    config = balanced(**{"training.max_steps": 60, "training.gradient_accumulation": 1})
    assert implied_epochs(config, 34) == 60 * 4 / 34
    (warning,) = run_warnings(config, train_rows=34, validation_rows=4)
    assert warning.code == "epochs"
    assert "7.1 epochs" in warning.message and "training.max_steps to about 25" in warning.message
    # Ranks multiply the rows a step sees.
    assert implied_epochs(config, 34, world_size=2) == 2 * 60 * 4 / 34
    many = balanced(**{"training.epochs": 5.0})
    (warning,) = run_warnings(many, train_rows=1000, validation_rows=100)
    assert warning.code == "epochs" and "training.epochs to 3 or less" in warning.message


def test_replay_rows_count_in_the_passes_over_the_users_rows():
    # Half the mix is replay: 100 steps of batch 4 cover 54 rows and 54 replay rows about 3.7 times.
    steps = {"training.max_steps": 100, "training.batch_size": 4, "training.gradient_accumulation": 1}
    config = balanced(**steps, **{"data.replay_ratio": 0.5})
    assert implied_epochs(config, 54) == 100 * 4 / 108
    (warning,) = run_warnings(config, train_rows=54, validation_rows=6)
    assert "over 54 training rows and 54 replay rows is about 3.7 epochs" in warning.message
    assert "training.max_steps to about 81" in warning.message


def test_no_validation_says_why_and_what_to_set():
    (auto,) = run_warnings(balanced(), train_rows=30, validation_rows=0)
    assert auto.code == "no_validation"
    assert "30 training rows are fewer than the 40" in auto.message
    assert "data.validation_ratio" in auto.message
    (off,) = run_warnings(balanced(**{"data.validation_ratio": 0.0}), train_rows=1000, validation_rows=0)
    assert "validation is off" in off.message


def test_a_learning_rate_far_above_the_nearest_presets_warns():
    (warning,) = run_warnings(balanced(**{"training.learning_rate": 2e-3}), 1000, 100)
    assert warning.code == "learning_rate"
    assert "2e-3 is 10×" in warning.message and "Balanced" in warning.message
    assert "Lower it to about 2e-4" in warning.message
    assert run_warnings(balanced(**{"training.learning_rate": 4e-4}), 1000, 100) == []  # 2×: fine


def test_rows_are_counted_from_the_files_with_the_automatic_hold_out(tmp_path):
    big = write_jsonl(tmp_path / "big.jsonl", fact_rows(repeat=20))  # 60 rows
    small = write_jsonl(tmp_path / "small.jsonl", fact_rows(repeat=4))  # 12 rows
    assert count_rows(RunConfig().with_overrides({"data.path": str(big)})) == (54, 6)
    assert count_rows(RunConfig().with_overrides({"data.path": str(small)})) == (12, 0)
    with_file = {"data.path": str(big), "data.validation_path": str(small)}
    assert count_rows(RunConfig().with_overrides(with_file)) == (60, 12)


def test_the_engine_writes_the_warnings_as_events_before_training(tiny_model_dir, facts_file, tmp_path):
    from testkit.engine_helpers import tiny_config

    from engine.runs.events import read_events
    from engine.training.recipe import train

    config = tiny_config(tiny_model_dir, facts_file, training__max_steps=1)  # lr 3e-3, 12 rows
    train(config, tmp_path / "run")
    events = read_events(tmp_path / "run" / "events.jsonl")
    found = [e for e in events if e["type"] == "warning" and e.get("code")]
    assert {e["code"] for e in found} == {"no_validation", "learning_rate"}
    first_training = next(i for i, e in enumerate(events) if e.get("state") == "training")
    assert all(events.index(e) < first_training for e in found)


def test_each_method_is_judged_against_its_own_usual_learning_rates():
    # The presets' 2e-4 is a LoRA sft rate: far too high for full fine-tuning and DPO, far too low
    # for prompt tuning, and only the method's own warning is given (not "N× the preset's").
    (full,) = run_warnings(balanced(**{"training.method": "full"}), train_rows=1000, validation_rows=100)
    assert full.code == "learning_rate" and "high for Full fine-tuning" in full.message
    assert "about 1e-5" in full.message
    (dpo,) = run_warnings(balanced(**{"training.method": "dpo"}), train_rows=1000, validation_rows=100)
    assert "high for DPO" in dpo.message
    (soft,) = run_warnings(balanced(**{"training.method": "prompt_tuning"}), 1000, 100)
    assert "low for Prompt tuning" in soft.message and "about 0.03" in soft.message
    fine = {"training.method": "dpo", "training.learning_rate": 5e-6}
    assert run_warnings(balanced(**fine), train_rows=1000, validation_rows=100) == []
