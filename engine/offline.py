"""Keep every Hugging Face library off the network.

Imported by `engine/__init__.py`, so the variables are set before any engine module can
import transformers, datasets or huggingface_hub (they read them at import time).
"""

from __future__ import annotations

import os

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "DO_NOT_TRACK": "1",
}


def force_offline() -> None:
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value
    keep_caches_in_our_folder()


def keep_caches_in_our_folder() -> None:
    """Compiler caches go under Whetstone's data folder, not /tmp or ~/.triton.

    Importing bitsandbytes imports torch.compile, whose inductor (and, on a GPU, Triton)
    would otherwise write caches outside the folders a user knows are ours. A user's own
    setting wins.
    """
    from engine.util.files import whetstone_home

    cache = whetstone_home() / "cache"
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache / "torchinductor"))
    os.environ.setdefault("TRITON_CACHE_DIR", str(cache / "triton"))
    # Custom model code that the library allowed is copied here and imported from here: ours, not
    # ~/.cache/huggingface/modules, where another tool's copy could be picked up (not overridable).
    os.environ["HF_MODULES_CACHE"] = str(cache / "hf_modules")


force_offline()
