"""Shared fixtures: an isolated Whetstone home, a tiny Llama model built locally, data files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# A test run never writes into the user's real data directory; the demo model is cached here.
os.environ.setdefault("WHETSTONE_HOME", str(REPO / ".cache" / "test-home"))

from testkit import tiny_model  # noqa: E402
from testkit.engine_helpers import tiny_config  # noqa: E402
from testkit.network import refuse_network  # noqa: E402
from testkit.tiny_model import write_jsonl  # noqa: E402

import engine  # noqa: E402,F401  (offline environment before transformers is imported)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer Llama with a byte-level BPE tokenizer and a ChatML template (pad == eos)."""
    return tiny_model.build(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def short_run(tiny_model_dir, tmp_path_factory) -> Path:
    """One short real QLoRA run of the tiny model (checkpoints at steps 4 and 8, adapter), made once.

    Shared read-only by the export tests (engine and app); copy it before changing anything.
    """
    from engine.training.recipe import train

    tmp = tmp_path_factory.mktemp("short-run")
    data = write_jsonl(tmp / "facts.jsonl", tiny_model.fact_rows())
    config = tiny_config(
        tiny_model_dir,
        data,
        training__max_steps=8,
        training__save_every=4,
        data__validation_ratio=0.0,
        lora__dropout=0.0,
    )
    assert train(config, tmp / "run").state == "done"
    return tmp / "run"


@pytest.fixture(scope="session")
def trained_run(tiny_model_dir, tmp_path_factory):
    """One full run of ~200 steps with every socket connection forbidden: (result, run dir, attempts).

    Long enough that the tuned tiny model answers the trained facts; shared read-only.
    """
    from engine.training.recipe import train

    tmp = tmp_path_factory.mktemp("trained")
    data = write_jsonl(tmp / "facts.jsonl", tiny_model.fact_rows())
    with refuse_network() as attempts:
        config = tiny_config(
            tiny_model_dir,
            data,
            training__max_steps=200,
            training__save_every=100,
            data__validation_ratio=0.0,
            lora__dropout=0.0,
        )
        result = train(config, tmp / "run")
    return result, tmp / "run", attempts


@pytest.fixture
def facts_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "facts.jsonl", tiny_model.fact_rows())


@pytest.fixture
def no_network():
    """Fail the test if anything tries to open a network connection (testkit.network)."""
    with refuse_network() as attempts:
        yield attempts


SLOW_FIXTURES = {"trained_run"}
"""Fixtures heavy enough (a 200-step training run) that every test using them is marked `slow`."""


@pytest.hookimpl(tryfirst=True)  # before `-m "not slow"` deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
