"""Stops, kills and out-of-memory: a run never loses its last complete checkpoint."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

import pytest
from testkit.engine_helpers import engine_cmd, losses, states, wait_for

from engine.cli.main import main
from engine.runs import checkpoints
from engine.runs.events import read_events


def start_training(model_dir, data, run_dir, *extra):
    args = engine_cmd(
        "train",
        "--model",
        str(model_dir),
        "--data",
        str(data),
        "--output",
        str(run_dir),
        "--lora-rank",
        "8",
        "--learning-rate",
        "0.003",
        "--max-length",
        "64",
        *extra,
    )
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
    )


def reached_step(run_dir, step):
    return any(
        e.get("step", 0) >= step for e in read_events(run_dir / "events.jsonl") if e["type"] == "metrics"
    )


@pytest.mark.slow  # a real engine process, stopped and resumed
@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "stop file"])
def test_a_stop_request_saves_a_checkpoint_and_exits_3(tiny_model_dir, facts_file, tmp_path, how):
    run_dir = tmp_path / "run"
    proc = start_training(
        tiny_model_dir, facts_file, run_dir, "--max-steps", "100000", "--save-every", "100000"
    )
    try:
        wait_for(lambda: reached_step(run_dir, 2), what="training to start")
        if how == "stop file":
            (run_dir / "STOP").write_text("stop")
        else:
            proc.send_signal(getattr(signal, how))
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 3, err
    assert "Traceback" not in err
    assert states(run_dir)[-1] == "stopped"
    latest = checkpoints.latest_complete(run_dir)
    assert latest is not None
    assert not (run_dir / "adapter").exists()  # a stopped run does not pretend to be finished
    stopped_at = int(latest.name.split("-")[1])
    # Resume in-process: the same CLI entry point, without paying the engine's import time again.
    assert (
        main(["train", "--output", str(run_dir), "--resume", "--max-steps", str(stopped_at + 2), "--quiet"])
        == 0
    )
    assert states(run_dir)[-1] == "done"
    assert max(losses(run_dir)) == stopped_at + 2


@pytest.mark.slow  # an engine process killed mid-checkpoint, then resumed
def test_a_run_killed_during_checkpointing_resumes_from_the_last_complete_one(
    tiny_model_dir, facts_file, tmp_path
):
    run_dir = tmp_path / "run"
    proc = start_training(tiny_model_dir, facts_file, run_dir, "--max-steps", "100000", "--save-every", "2")
    try:
        # Kill the moment the third checkpoint folder appears: usually in the middle of writing it.
        wait_for(
            lambda: (run_dir / "checkpoints" / "checkpoint-6").exists(), what="a checkpoint being written"
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    # Whatever the kill left, also leave a half-written checkpoint after the complete ones.
    latest = checkpoints.latest_complete(run_dir)
    assert latest is not None
    partial = run_dir / "checkpoints" / "checkpoint-99"
    shutil.copytree(latest, partial)
    (partial / checkpoints.MARKER).unlink()
    (partial / "adapter_model.safetensors").write_bytes(b"truncated")

    assert main(["train", "--output", str(run_dir), "--resume", "--max-steps", "12", "--quiet"]) == 0
    assert not partial.exists()
    assert states(run_dir)[-1] == "done"
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    resumed_from = int(latest.name.split("-")[1])
    steps_after_resume = [e["step"] for e in read_events(run_dir / "events.jsonl") if e["type"] == "metrics"][
        -(12 - resumed_from) :
    ]
    assert steps_after_resume == list(range(resumed_from + 1, 13))


def test_out_of_memory_becomes_an_oom_event_with_remedies(
    tiny_model_dir, facts_file, tmp_path, capsys, monkeypatch
):
    import torch
    import transformers

    def exhausted(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(transformers.Trainer, "train", exhausted)
    run_dir = tmp_path / "run"
    code = main(
        [
            "train",
            "--model",
            str(tiny_model_dir),
            "--data",
            str(facts_file),
            "--output",
            str(run_dir),
            "--batch-size",
            "32",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: Out of memory") and "batch_size (now 32" in err and "Traceback" not in err
    errors = [e for e in read_events(run_dir / "events.jsonl") if e["type"] == "error"]
    assert errors[-1]["kind"] == "oom" and "max_length" in errors[-1]["hint"]
    assert "an evaluation in the Evaluate tab" in errors[-1]["hint"]  # GPU memory others may hold
    assert states(run_dir)[-1] == "failed"


def test_running_out_of_ram_does_not_send_the_user_to_the_gpu():
    from engine.config import RunConfig
    from engine.training.failures import as_user_error

    hint = as_user_error(MemoryError(), RunConfig(), None).hint
    assert "batch_size" in hint and "GPU" not in hint


def test_a_full_disk_is_reported_as_bad_input_without_a_traceback(
    tiny_model_dir, facts_file, tmp_path, capsys, monkeypatch
):
    import errno

    import peft

    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "adapter_model.safetensors")

    monkeypatch.setattr(peft.PeftModel, "save_pretrained", disk_full)
    run_dir = tmp_path / "run"
    code = main(
        [
            "train",
            "--model",
            str(tiny_model_dir),
            "--data",
            str(facts_file),
            "--output",
            str(run_dir),
            "--max-steps",
            "2",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: The disk is full") and "--resume" in err
    assert states(run_dir)[-1] == "failed"
    assert not (run_dir / "adapter").exists()
