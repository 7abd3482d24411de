"""A run under hostile conditions: a full disk, odd STOP entries, two engines on one run folder."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading

import pytest
from testkit.engine_helpers import states, tiny_config, wait_for

from engine.cli.main import main
from engine.config import load_config
from engine.errors import ConfigError
from engine.runs import checkpoints, events
from engine.runs.events import read_events
from engine.runs.lock import LOCK_NAME, RunBusy, RunLock
from engine.runs.state import PID_NAME
from engine.training.recipe import train
from engine.training.stop import StopRequest, read_stop_word


def copy_run(short_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(short_run, run)
    return run


def train_args(model_dir, data, run_dir, *extra):
    return [
        "train",
        "--model",
        str(model_dir),
        "--data",
        str(data),
        "--output",
        str(run_dir),
        "--lora-rank",
        "8",
        "--max-length",
        "64",
        "--quiet",
        *extra,
    ]


def assert_whole_lines(run_dir):
    raw = (run_dir / "events.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    for line in raw.splitlines():
        json.loads(line)  # nothing torn, nothing glued together


# -- a full disk (issue 18.11) ---------------------------------------------------------

TORCH_FULL = (
    "[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file data/0: "
    "file write failed"
)
SAFETENSORS_FULL = (
    'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
)


@pytest.mark.parametrize("message", [TORCH_FULL, SAFETENSORS_FULL], ids=["torch.save", "safetensors"])
def test_a_full_disk_during_a_checkpoint_save_is_an_io_error_with_a_final_status(
    tiny_model_dir, facts_file, tmp_path, capsys, monkeypatch, message
):
    import transformers

    from engine.training import failures

    def save_fails(self, *args, **kwargs):
        folder = checkpoints.checkpoints_dir(run_dir) / f"checkpoint-{self.state.global_step}"
        folder.mkdir(parents=True)
        (folder / "optimizer.pt").write_bytes(b"half")
        raise RuntimeError(message)  # how torch and safetensors report ENOSPC: not an OSError

    monkeypatch.setattr(transformers.Trainer, "_save_checkpoint", save_fails)
    # torch's message names no cause; the engine then asks how much space is left.
    almost_full = shutil._ntuple_diskusage(10**9, 10**9, 2**20)
    monkeypatch.setattr(failures.shutil, "disk_usage", lambda path: almost_full)
    run_dir = tmp_path / "run"
    code = main(train_args(tiny_model_dir, facts_file, run_dir, "--max-steps", "5", "--save-every", "2"))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: The disk is full") and "--resume" in err and err.count("\n") == 1, err
    errors = [e for e in read_events(run_dir / "events.jsonl") if e["type"] == "error"]
    assert errors[-1]["kind"] == "io" and states(run_dir)[-1] == "failed"
    assert not (run_dir / PID_NAME).exists()
    assert checkpoints._all(run_dir) == []  # the half-written checkpoint is removed to give the space back
    assert_whole_lines(run_dir)


def test_a_disk_that_fills_while_events_are_written_leaves_no_torn_line_and_no_pid_file(
    tiny_model_dir, facts_file, tmp_path, capsys, monkeypatch
):
    real_write = os.write
    full = []

    def write(fd, data):
        if full or b'"step": 2,' in data and b'"metrics"' in data:
            full.append(data)
            if len(full) == 1:
                real_write(fd, data[: len(data) // 2])  # the disk takes half a line, then nothing
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(events, "_write", write)
    run_dir = tmp_path / "run"
    code = main(train_args(tiny_model_dir, facts_file, run_dir, "--max-steps", "5"))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: The disk is full") and "Traceback" not in err, err
    assert len(full) == 3  # the metrics line, then the error and the final status, each tried once
    assert_whole_lines(run_dir)
    assert (
        states(run_dir)[-1] == "training"
    )  # the last status that could be written; readers say "interrupted"
    assert not (run_dir / PID_NAME).exists()


def test_an_unwritable_engine_log_gives_one_internal_error_not_a_chain(
    short_run, tmp_path, capsys, monkeypatch
):
    import transformers

    def bug(self, *args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(transformers.Trainer, "train", bug)
    run = copy_run(short_run, tmp_path)
    (run / "engine.log").mkdir()  # opening it for writing fails, as a full disk would
    code = main(["train", "--output", str(run), "--resume", "--max-steps", "10", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("Traceback") == 1 and "During handling" not in err
    assert err.splitlines()[-1].startswith("internal error: ValueError: a bug (traceback in the lines above;")
    assert states(run)[-1] == "failed" and not (run / PID_NAME).exists()


# -- the STOP entry (issue 18.12) ------------------------------------------------------


def read_in_thread(function, timeout=10):
    result = []
    thread = threading.Thread(target=lambda: result.append(function()), daemon=True)
    thread.start()
    thread.join(timeout)
    return thread, result


def test_a_fifo_as_stop_is_a_stop_request_that_never_blocks(tmp_path):
    stop = StopRequest(tmp_path / "STOP")
    os.mkfifo(stop.stop_file)
    thread, result = read_in_thread(lambda: (stop.requested, stop.pause))
    try:
        assert not thread.is_alive(), "reading the STOP FIFO blocked"
        assert result == [(True, False)]
    finally:
        if thread.is_alive():  # unblock the reader the old code left waiting for a writer
            os.close(os.open(stop.stop_file, os.O_WRONLY | os.O_NONBLOCK))


def test_stop_contents_are_read_sparingly(tmp_path):
    path = tmp_path / "STOP"
    path.write_bytes(b"\xffpause\xfe")
    assert read_stop_word(path) == "\ufffdpause\ufffd"
    path.write_bytes(b"pause" + b" " * 10**6 + b"x")
    assert read_stop_word(path) == "pause"  # a big file is a stop request, never read whole
    path.unlink()
    path.mkdir()
    assert read_stop_word(path) is None and StopRequest(path).requested


@pytest.mark.slow  # three short training runs
def test_odd_stop_entries_stop_the_run_with_a_checkpoint_and_never_block_a_resume(
    tiny_model_dir, facts_file, tmp_path
):
    run = tmp_path / "run"
    config = tiny_config(tiny_model_dir, facts_file, training__max_steps=50, training__save_every=100)

    def at_step(step, make):
        def echo(event):
            if event["type"] == "metrics" and event["step"] == step:
                make(run / "STOP")

        return echo

    assert train(config, run, echo=at_step(2, lambda p: p.write_bytes(b"\xff\xfe stop"))).step == 3
    assert states(run)[-1] == "stopped"
    # A STOP folder (the old engine's next start failed with IsADirectoryError).
    assert train(config, run, resume=True, echo=at_step(4, lambda p: p.mkdir())).step == 5
    assert (run / "STOP").is_dir()
    further = config.with_overrides({"training.max_steps": 6})
    assert train(further, run, resume=True).state == "done"
    assert not (run / "STOP").exists()
    assert [s for s, _ in checkpoints.complete_checkpoints(run)] == [5, 6]  # two are kept


def test_a_stop_folder_with_files_in_it_is_never_emptied(short_run, tmp_path):
    run = copy_run(short_run, tmp_path)
    (run / "STOP").mkdir()
    (run / "STOP" / "notes.txt").write_text("mine")
    config = load_config(run / "config.toml").with_overrides({"training.max_steps": 10})
    with pytest.raises(ConfigError, match="STOP is a folder with files in it"):
        train(config, run, resume=True)
    assert (run / "STOP" / "notes.txt").read_text() == "mine"
    assert not (run / PID_NAME).exists()


# -- one engine per run folder (issue 18.20) -------------------------------------------


def test_a_second_engine_on_a_run_being_trained_is_refused_before_it_writes(short_run, tmp_path, capsys):
    run = copy_run(short_run, tmp_path)
    before = (run / "events.jsonl").read_bytes()
    with RunLock(run):  # this test process plays the engine that has just started on the run
        code = main(["train", "--output", str(run), "--resume", "--max-steps", "10", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        f"error: The run {run} is already being trained by process {os.getpid()}. Wait for it "
        "to finish, or stop it first (Stop in the app, or a STOP file in the run folder).\n"
    )
    assert (run / "events.jsonl").read_bytes() == before and not (run / PID_NAME).exists()


def test_a_new_run_racing_another_for_the_same_folder_is_refused(
    tiny_model_dir, facts_file, tmp_path, capsys
):
    run = tmp_path / "run"
    run.mkdir()
    with RunLock(run):  # the other engine has just made the folder and locked it
        code = main(train_args(tiny_model_dir, facts_file, run, "--max-steps", "2"))
    assert code == 2 and "already being trained" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]
    assert (
        main(train_args(tiny_model_dir, facts_file, run, "--max-steps", "2")) == 0
    )  # the folder is still usable


def test_the_lock_goes_with_the_process_that_held_it(tmp_path):
    script = (
        "import sys, time; from engine.runs.lock import RunLock; "
        "RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(600)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunBusy, match=f"by process {holder.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    wait_for(lambda: RunLock(tmp_path).acquire().release() is None, what="the lock to be free")


def test_a_loss_that_becomes_nan_stops_the_run_and_keeps_only_the_checkpoints_before_it(
    tiny_model_dir, facts_file, tmp_path, capsys, monkeypatch
):
    import transformers

    training_step = transformers.Trainer.training_step

    def poisoned(self, model, inputs, *args, **kwargs):
        if self.state.global_step == 3:  # the weights stop being numbers during step 4
            for name, param in model.named_parameters():
                if "lora_A" in name:
                    param.data.fill_(float("nan"))
        return training_step(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(transformers.Trainer, "training_step", poisoned)
    run_dir = tmp_path / "run"
    # With held-out rows, evaluated every step: an evaluation saves a checkpoint too.
    args = ["--max-steps", "6", "--save-every", "2", "--validation-ratio", "0.25", "--eval-every", "1"]
    code = main(train_args(tiny_model_dir, facts_file, run_dir, *args))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(
        "error: The training loss became NaN (not a number) at step 4: the run stopped there and saved "
        "nothing after it (the last complete checkpoint, checkpoint-3, is kept). Try: lower "
        "training.learning_rate (now "
    ), err
    assert [step for step, _path in checkpoints.complete_checkpoints(run_dir)] == [1, 2, 3]
    assert checkpoints._all(run_dir) == checkpoints.complete_checkpoints(run_dir)  # no broken step-4 one
    assert not (run_dir / "adapter").exists()
    events_ = read_events(run_dir / "events.jsonl")
    assert [e["step"] for e in events_ if e["type"] == "metrics"] == [1, 2, 3]  # no NaN on the plot
    assert [e["kind"] for e in events_ if e["type"] == "error"] == ["diverged"]
    assert states(run_dir)[-1] == "failed"


def test_out_of_memory_while_loading_the_model_says_the_model_does_not_fit(
    tiny_model_dir, facts_file, tmp_path, capsys, monkeypatch
):
    import torch
    import transformers

    def too_big(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", too_big)
    run_dir = tmp_path / "run"
    code = main(train_args(tiny_model_dir, facts_file, run_dir, "--max-steps", "2"))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    # Not "Try: lower training.batch_size …": nothing of the run's own size matters before step 1.
    assert err.startswith("error: Out of memory while loading the model into RAM: its weights alone need")
    assert "was free. Pick a smaller model, or close other programs to free RAM." in err
    assert [e["kind"] for e in read_events(run_dir / "events.jsonl") if e["type"] == "error"] == ["oom"]
    assert states(run_dir)[-1] == "failed"
