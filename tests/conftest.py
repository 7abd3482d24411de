"""Shared fixtures: an isolated Whetstone home, a tiny Llama model built locally, data files."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# A test run never writes into the user's real data directory; the demo model is cached here.
os.environ.setdefault("WHETSTONE_HOME", str(REPO / ".cache" / "test-home"))

sys.path.insert(0, str(Path(__file__).parent))
import tiny_model  # noqa: E402
from tiny_model import write_jsonl  # noqa: E402

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
    sys.path.insert(0, str(Path(__file__).parent / "engine"))
    from helpers import tiny_config

    from engine.training import train

    tmp = tmp_path_factory.mktemp("short-run")
    data = write_jsonl(tmp / "facts.jsonl", tiny_model.fact_rows())
    config = tiny_config(tiny_model_dir, data, training__max_steps=8, training__save_every=4,
                         data__validation_ratio=0.0, lora__dropout=0.0)
    assert train(config, tmp / "run").state == "done"
    return tmp / "run"


@pytest.fixture(scope="session")
def trained_run(tiny_model_dir, tmp_path_factory):
    """One full run of ~200 steps with every socket connection forbidden: (result, run dir, attempts).

    Long enough that the tuned tiny model answers the trained facts; shared read-only.
    """
    sys.path.insert(0, str(Path(__file__).parent / "engine"))
    from helpers import tiny_config

    from engine.training import train

    tmp = tmp_path_factory.mktemp("trained")
    data = write_jsonl(tmp / "facts.jsonl", tiny_model.fact_rows())
    attempts = []
    real_connect = socket.socket.connect

    def refuse(self, address, *args, **kwargs):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise AssertionError(f"network connection attempted to {address!r}")
        return real_connect(self, address, *args, **kwargs)

    socket.socket.connect = refuse
    try:
        config = tiny_config(tiny_model_dir, data, training__max_steps=200, training__save_every=100,
                             data__validation_ratio=0.0, lora__dropout=0.0)
        result = train(config, tmp / "run")
    finally:
        socket.socket.connect = real_connect
    return result, tmp / "run", attempts


@pytest.fixture
def facts_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "facts.jsonl", tiny_model.fact_rows())


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if anything tries to open a network connection."""
    attempts = []

    def refuse(self, address, *args, **kwargs):
        family = getattr(self, "family", None)
        if family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise AssertionError(f"network connection attempted to {address!r}")
        return real_connect(self, address, *args, **kwargs)

    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    real_create = socket.create_connection

    def refuse_create(address, *args, **kwargs):
        attempts.append(address)
        raise AssertionError(f"network connection attempted to {address!r}")

    monkeypatch.setattr(socket, "create_connection", refuse_create)
    yield attempts
    assert real_create  # keep a reference; monkeypatch restores it


def pytest_collection_modifyitems(config, items):
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
