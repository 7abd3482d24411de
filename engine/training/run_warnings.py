"""Warnings before a run: settings that will likely overfit, each saying what to change.

The engine writes them as warning events (the CLI prints them, the run monitor lists them);
the setup screen shows the same list before Start, from the rows counted in the data files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.config import AUTO_VALIDATION_MIN_ROWS, RunConfig
from engine.training.presets import Preset

MAX_EPOCHS = 3.0  # more passes than this over a small dataset mostly memorises it
LR_FACTOR = 3.0  # a learning rate this many times the preset's is "far above" it


@dataclass(frozen=True)
class RunWarning:
    code: str  # epochs, no_validation, learning_rate
    message: str


def implied_epochs(config: RunConfig, train_rows: int, world_size: int = 1) -> float:
    """Passes over the training rows the run makes (max_steps × batch × accumulation × ranks ÷ rows)."""
    t = config.training
    if t.max_steps <= 0:
        return t.epochs
    rows = train_rows + replay_rows_added(config, train_rows)
    return t.max_steps * t.batch_size * t.gradient_accumulation * world_size / max(rows, 1)


def replay_rows_added(config: RunConfig, train_rows: int) -> int:
    """The replay rows data.replay_ratio mixes in (each pass covers them too, so fewer of the user's)."""
    if config.data.replay_ratio <= 0:
        return 0
    from engine.eval.replay import replay_count, replay_prompts

    return replay_count(config.data.replay_ratio, train_rows, len(replay_prompts()))


def _nearest_preset(config: RunConfig, presets: Sequence[Preset]) -> Preset | None:
    """The preset whose settings (the learning rate aside) differ least from the config's."""
    raw = config.to_dict()

    def differences(preset: Preset) -> int:
        return sum(
            raw[group][key] != value
            for group, key, value in ((*d.split(".", 1), v) for d, v in preset.settings.items())
            if f"{group}.{key}" != "training.learning_rate"
        )

    return min(presets, key=differences, default=None)


def _number(value: float) -> str:
    """3e-4 rather than 0.0003."""
    if value >= 1e-2:
        return f"{value:g}"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def run_warnings(
    config: RunConfig,
    train_rows: int,
    validation_rows: int,
    world_size: int = 1,
    presets: Sequence[Preset] | None = None,
) -> list[RunWarning]:
    """What about these settings will likely overfit, for `train_rows` training rows."""
    from engine.training.presets import list_presets

    found = []
    t = config.training
    epochs = implied_epochs(config, train_rows, world_size)
    if epochs > MAX_EPOCHS:
        if t.max_steps > 0:
            per_step = t.batch_size * t.gradient_accumulation * world_size
            replay = replay_rows_added(config, train_rows)
            fewer = max(1, int(MAX_EPOCHS * (train_rows + replay) / per_step))
            change = f"Lower training.max_steps to about {fewer}, or add more training rows."
            mixed = f" and {replay} replay rows" if replay else ""
            what = (
                f"{t.max_steps} steps × batch {t.batch_size} × accumulation {t.gradient_accumulation} "
                f"over {train_rows} training rows{mixed} is about {epochs:.1f} epochs"
            )
        else:
            change = f"Lower training.epochs to {MAX_EPOCHS:g} or less, or add more training rows."
            what = f"training.epochs = {epochs:g}"
        found.append(
            RunWarning(
                "epochs",
                f"{what}: more than {MAX_EPOCHS:g} passes over the data will likely "
                f"overfit (memorise the rows, forget the rest). {change}",
            )
        )
    if validation_rows == 0:
        if config.data.validation_ratio == "auto" and not config.data.validation_path:
            why = (
                f"the {train_rows} training rows are fewer than the {AUTO_VALIDATION_MIN_ROWS} "
                "needed to hold some out automatically"
            )
        else:
            why = "validation is off"
        found.append(
            RunWarning(
                "no_validation",
                f"No validation data ({why}): overfitting goes unnoticed and the adapter is the last "
                "step's, not the best. Add a validation file, or set data.validation_ratio (e.g. 0.1).",
            )
        )
    method_warning = _method_learning_rate(t.method, t.learning_rate)
    if method_warning:
        found.append(RunWarning("learning_rate", method_warning))
        return found
    preset = _nearest_preset(config, list_presets() if presets is None else presets)
    preset_lr = preset.settings.get("training.learning_rate") if preset is not None else None
    if t.method != "sft":
        preset_lr = None  # the presets' rates are LoRA sft rates; the other methods are judged above
    if isinstance(preset_lr, int | float) and preset_lr > 0 and t.learning_rate >= LR_FACTOR * preset_lr:
        found.append(
            RunWarning(
                "learning_rate",
                f"training.learning_rate = {_number(t.learning_rate)} is {t.learning_rate / preset_lr:.0f}× "
                f"the {preset.name} preset's {_number(preset_lr)}: the adapter will likely overshoot and "
                f"overfit. Lower it to about {_number(preset_lr)}.",
            )
        )
    return found


# training.method -> (lowest, highest) usual learning rate, from the methods' papers and TRL's docs.
METHOD_LEARNING_RATES = {
    "full": (1e-6, 5e-5),  # every weight moves: LoRA's rates would wreck the model
    "dpo": (1e-7, 5e-5),
    "orpo": (1e-7, 5e-5),
    "kto": (1e-7, 5e-5),
    "prompt_tuning": (1e-3, 1.0),  # a few embeddings alone: far higher rates than LoRA
}


def _method_learning_rate(method: str, rate: float) -> str:
    """A warning when the learning rate is far from what the method usually trains with."""
    low, high = METHOD_LEARNING_RATES.get(method, (0.0, float("inf")))
    what = {"full": "Full fine-tuning", "prompt_tuning": "Prompt tuning"}.get(method, method.upper())
    usual = f"{_number(low if method != 'prompt_tuning' else 1e-2)} to {_number(high if high < 1 else 3e-1)}"
    if rate > high:
        return (
            f"training.learning_rate = {_number(rate)} is high for {what} (usually {usual}): the model "
            f"will likely overshoot and lose what it knew. Lower it to about {_number(high / 5)}."
        )
    if rate < low:
        return (
            f"training.learning_rate = {_number(rate)} is low for {what} (usually {usual}): it will "
            f"barely learn. Raise it to about {_number(low * 30)}."
        )
    return ""


def count_rows(config: RunConfig) -> tuple[int, int]:
    """(training rows, validation rows) the run will have, from the data files without a tokenizer.

    Rows a tokenizer later drops (too long to train on) are still counted: an estimate, for the
    setup screen's warnings before the run.
    """
    from engine.data.prepare import held_out_count, read_config_data, validation_share

    rows = len(read_config_data(config.data).rows)
    if config.data.validation_path:
        return rows, len(read_config_data(config.data, config.data.validation_path).rows)
    held = held_out_count(rows, validation_share(config.data, rows)[0])
    return rows - held, held
