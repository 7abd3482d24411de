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


force_offline()
