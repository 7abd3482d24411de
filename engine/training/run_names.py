"""A readable default name for a new run: the nearest preset and what differs from it.

"Quick test · lr 3e-4" says more in a run list than "run-20261206-212735". The name is
only a suggestion shown at Start; the user may type another (engine.runs.names stores it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.config import RunConfig
from engine.training.presets import Preset

CUSTOM = "Custom"
MAX_DIFFERENCES = 3  # beyond this the run is the user's own recipe, not a variant of a preset

_LABELS = {
    "lora.rank": "rank {}",
    "lora.alpha": "alpha {}",
    "lora.dropout": "dropout {}",
    "data.max_length": "length {}",
    "training.epochs": "{} epochs",
    "training.batch_size": "batch {}",
    "training.gradient_accumulation": "accumulate {}",
    "training.learning_rate": "lr {}",
    "training.warmup_ratio": "warmup {}",
    "training.save_every": "save every {}",
    "training.eval_every": "eval every {}",
    "training.keep_checkpoints": "keep {}",
}


# A run's name starts with its method unless it is sft, the default.
METHOD_NAMES = {"dpo": "DPO", "orpo": "ORPO", "kto": "KTO", "full": "Full", "prompt_tuning": "Prompt tuning"}


def _number(value: Any) -> str:
    """3e-4 rather than 0.0003; 16 rather than 16.0."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float) and value != 0 and abs(value) < 1e-3:
        mantissa, exponent = f"{value:.2e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def setting_label(dotted: str, value: Any, config: RunConfig) -> str:
    """One setting in a few words, as a run name shows it."""
    if dotted == "training.max_steps":
        return f"{value} steps" if value else f"{_number(config.training.epochs)} epochs"
    if dotted == "lora.target_modules":
        return "all linear layers" if value == ["all-linear"] else "on " + ",".join(map(str, value))
    if isinstance(value, bool):
        words = {
            "lora.use_rslora": "rsLoRA",
            "lora.use_dora": "DoRA",
            "training.gradient_checkpointing": "checkpointing",
        }
        word = words.get(dotted, dotted.rsplit(".", 1)[-1].replace("_", " "))
        return word if value else f"no {word}"
    template = _LABELS.get(dotted)
    if template is None:
        template = dotted.rsplit(".", 1)[-1].replace("_", " ") + " {}"
    return template.format(_number(value))


def _differences(preset: Preset, raw: dict) -> list[str]:
    out = []
    for dotted, wanted in preset.settings.items():
        group, key = dotted.split(".", 1)
        value = raw.get(group, {}).get(key)
        if value != wanted:
            out.append(dotted)
    return out


def default_run_name(config: RunConfig, presets: Sequence[Preset]) -> str:
    """The nearest preset's name and up to three settings that differ from it, joined by " · "."""
    raw = config.to_dict()
    best: tuple[Preset, list[str]] | None = None
    for preset in presets:
        differing = _differences(preset, raw)
        if best is None or len(differing) < len(best[1]):
            best = (preset, differing)
    if best is not None and len(best[1]) <= MAX_DIFFERENCES:
        preset, differing = best
        labels = [setting_label(d, raw[d.split(".")[0]][d.split(".", 1)[1]], config) for d in differing]
    else:
        preset = None
        steps = config.training.max_steps
        labels = [
            f"rank {config.lora.rank}",
            f"lr {_number(config.training.learning_rate)}",
            f"{steps} steps" if steps else f"{_number(config.training.epochs)} epochs",
        ]
    unique = list(dict.fromkeys(labels))  # max_steps 0 and epochs can both read "2 epochs"
    method = METHOD_NAMES.get(config.training.method)
    return " · ".join([*([method] if method else []), preset.name if preset is not None else CUSTOM, *unique])
