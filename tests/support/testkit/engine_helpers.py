"""Helpers for engine tests: configs for the tiny model and running the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from engine.config import RunConfig
from engine.runs.events import read_events

FAST = {
    "lora.rank": 16,
    "lora.alpha": 32.0,
    "training.learning_rate": 3e-3,
    "training.batch_size": 4,
    "training.lr_scheduler": "constant",
    "training.warmup_ratio": 0.0,
    "training.gradient_checkpointing": True,
    "data.max_length": 64,
}


def tiny_config(model_dir: Path, data: Path, **overrides) -> RunConfig:
    values = dict(FAST, **{"model.path": str(model_dir), "data.path": str(data)})
    values.update({k.replace("__", "."): v for k, v in overrides.items()})
    return RunConfig().with_overrides(values)


def engine_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine.cli", *args]


def run_engine(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        engine_cmd(*args), capture_output=True, text=True, timeout=timeout, env=os.environ.copy()
    )


def losses(run_dir: Path) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in read_events(run_dir / "events.jsonl") if e["type"] == "metrics"}


def train_briefly(model_dir: Path, data: Path, run_dir: Path, **overrides) -> dict[int, float]:
    """A few real steps of the tiny model (3 unless overridden, nothing held out): the losses by step."""
    from engine.training.recipe import train

    settings = {"training__max_steps": 3, "data__validation_ratio": 0.0, **overrides}
    assert train(tiny_config(model_dir, data, **settings), run_dir).state == "done"
    return losses(run_dir)


def events_of(run_dir: Path, kind: str) -> list[dict]:
    return [e for e in read_events(run_dir / "events.jsonl") if e["type"] == kind]


def states(run_dir: Path) -> list[str]:
    return [e["state"] for e in read_events(run_dir / "events.jsonl") if e["type"] == "status"]


def wait_for(condition, timeout: float = 120, what: str = "condition"):
    """Poll a condition (not a fixed sleep) until it holds or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def expect_bad_input(capsys, argv, *words) -> str:
    """Run the CLI in-process: exit 2, one `error:` line naming every word, no traceback."""
    from engine.cli.main import main

    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]
