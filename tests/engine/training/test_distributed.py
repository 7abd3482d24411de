"""Data-parallel training: two gloo processes on the CPU, launched by the cluster bundle's scripts.

4-bit on the CPU works under DDP here (bitsandbytes' CPU backend), so these runs are real
QLoRA with two ranks, not plain LoRA.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from testkit.engine_helpers import losses, states, tiny_config, wait_for

from engine.cli.main import main
from engine.config import config_to_toml
from engine.runs.events import EventLog, read_events
from engine.training.distributed import Ranks, ranks_from_env

# Same samples per global step in both runs: no length grouping (its groups depend on the
# per-process batch), no dropout (each rank draws its own mask), a constant learning rate.
EXACT = {
    "training__group_by_length": False,
    "lora__dropout": 0.0,
    "data__validation_ratio": 0.0,
    "training__save_every": 3,
}


def test_ranks_come_from_the_launcher_environment():
    assert ranks_from_env({}) == Ranks(0, 0, 1) and not ranks_from_env({}).distributed
    ranks = ranks_from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"})
    assert (ranks.rank, ranks.local_rank, ranks.world_size, ranks.is_main, ranks.distributed) == (
        3,
        1,
        4,
        False,
        True,
    )
    assert ranks_from_env({"WORLD_SIZE": "x"}).world_size == 1


def test_a_rank_other_than_0_makes_events_but_writes_nothing(tmp_path):
    seen = []
    log = EventLog(None, echo=seen.append)
    event = log.status("training", step=0)
    log.close()
    assert event["state"] == "training" and seen == [event] and list(tmp_path.iterdir()) == []


def bundle_env(**extra) -> dict:
    env = dict(os.environ, PYTHON=sys.executable, PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def reference(tiny_model_dir, tmp_path_factory):
    """A single-process run (batch 4) and its cluster bundle."""
    from testkit.tiny_model import fact_rows, write_jsonl

    from engine.training.recipe import train

    tmp = tmp_path_factory.mktemp("distributed")
    data = write_jsonl(tmp / "facts.jsonl", fact_rows(8))
    config = tiny_config(tiny_model_dir, data, training__max_steps=6, **EXACT)
    result = train(config, tmp / "single")
    assert result.state == "done"
    assert main(["cluster-bundle", str(tmp / "single"), str(tmp / "bundle")]) == 0
    return tmp / "single", tmp / "bundle"


@pytest.mark.slow  # two torchrun ranks
def test_two_processes_train_like_one_with_the_same_global_batch(reference):
    single, bundle = reference
    done = subprocess.run(
        [str(bundle / "launch-torchrun.sh"), "--batch-size", "2"],
        cwd=bundle,
        env=bundle_env(NPROC="2"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = bundle / "runs" / "single"
    one, two = losses(single), losses(run)
    assert sorted(two) == [1, 2, 3, 4, 5, 6]
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=2e-3), (step, one, two)

    # Rank 0 alone wrote the folder: one event per step, one adapter, no pid file left.
    events = read_events(run / "events.jsonl")
    assert [e["step"] for e in events if e["type"] == "metrics"] == [1, 2, 3, 4, 5, 6]
    assert {e["world_size"] for e in events if e["type"] == "metrics"} == {2}
    assert states(run) == ["loading", "training", "saving", "done"]
    assert done.stdout.count("Adapter written to") == 1
    assert (run / "adapter" / "adapter_model.safetensors").is_file() and not (run / "engine.pid").exists()
    assert not [p for p in run.iterdir() if p.name.startswith(".")]
    checkpoint = run / "checkpoints" / "checkpoint-6"
    assert (checkpoint / "whetstone-complete.json").is_file()
    assert {p.name for p in checkpoint.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    # Global tokens/s: the trainer sums the tokens of both ranks.
    tokens = [e["tokens"] for e in events if e["type"] == "metrics"]
    single_tokens = [e["tokens"] for e in read_events(single / "events.jsonl") if e["type"] == "metrics"]
    assert tokens == single_tokens


@pytest.mark.slow  # two accelerate ranks
def test_accelerate_launch_runs_the_same_command(reference, tmp_path):
    """`accelerate launch --multi_gpu` starts its ranks through torch's launcher; on a CPU they use gloo."""
    single, _bundle = reference
    accelerate = Path(sys.executable).with_name("accelerate")
    run = tmp_path / "accelerate-run"
    done = subprocess.run(
        [
            str(accelerate),
            "launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            str(free_port()),
            "-m",
            "engine.cli",
            "train",
            "--config",
            str(single / "config.toml"),
            "--output",
            str(run),
            "--batch-size",
            "2",
            "--max-steps",
            "2",
        ],
        env=bundle_env(HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    two = losses(run)
    assert sorted(two) == [1, 2] and two[1] == pytest.approx(losses(single)[1], rel=2e-3)
    assert {e.get("world_size") for e in read_events(run / "events.jsonl") if e["type"] == "metrics"} == {2}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_slurm(folder: Path) -> Path:
    """`srun` and `scontrol` for one node: srun runs its command once, as a one-task step would."""
    folder.mkdir()
    (folder / "srun").write_text('#!/bin/sh\nwhile [ "${1#--}" != "$1" ]; do shift; done\nexec "$@"\n')
    (folder / "scontrol").write_text("#!/bin/sh\necho localhost\n")
    for tool in ("srun", "scontrol"):
        (folder / tool).chmod(0o755)
    return folder


@pytest.mark.slow  # emulated Slurm job, twice
def test_a_slurm_run_stops_on_all_ranks_at_one_step_and_resumes(reference, tmp_path):
    _single, bundle = reference
    bin_dir = fake_slurm(tmp_path / "bin")
    run = tmp_path / "slurm-run"
    env = bundle_env(
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        SLURM_SUBMIT_DIR=str(bundle),
        SLURM_NNODES="1",
        SLURM_JOB_ID="7",
        SLURM_JOB_NODELIST="localhost",
        GPUS_PER_NODE="2",
        MASTER_PORT=str(free_port()),
        RUN_DIR=str(run),
    )
    job = subprocess.Popen(
        ["bash", str(bundle / "slurm-job.sh"), "--batch-size", "2", "--max-steps", "60"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: any(e["type"] == "metrics" for e in read_events(run / "events.jsonl")), 300, "a step"
        )
        (run / "STOP").write_text("stop")
        output, _ = job.communicate(timeout=300)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == 3, output[-3000:]
    stopped_at = max(losses(run))
    assert stopped_at < 60 and states(run)[-1] == "stopped"
    checkpoint = run / "checkpoints" / f"checkpoint-{stopped_at}"
    assert (checkpoint / "whetstone-complete.json").is_file()
    assert len(list(checkpoint.glob("rng_state_*.pth"))) == 2

    # Submitting the job again continues from that checkpoint (the scripts add --resume).
    env["MASTER_PORT"] = str(free_port())
    again = subprocess.run(
        ["bash", str(bundle / "slurm-job.sh"), "--batch-size", "2", "--max-steps", str(stopped_at + 2)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    steps = [e["step"] for e in read_events(run / "events.jsonl") if e["type"] == "metrics"]
    assert steps[-2:] == [stopped_at + 1, stopped_at + 2] and len(steps) == len(set(steps))
    assert states(run)[-1] == "done" and (run / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow  # needs the reference training run
def test_the_bundle_holds_settings_data_and_scripts(reference, tmp_path, tiny_model_dir):
    import json
    import tomllib

    single, bundle = reference
    info = json.loads((bundle / "bundle.json").read_text())
    names = {f["path"] for f in info["files"]}
    assert {
        "config.toml",
        "data/facts.jsonl",
        "launch-torchrun.sh",
        "slurm-job.sh",
        "train-env.sh",
        "README.md",
    } <= names
    assert (bundle / "data" / "facts.jsonl").read_bytes() == (single.parent / "facts.jsonl").read_bytes()
    config = tomllib.loads((bundle / "config.toml").read_text())
    assert config["data"]["path"] == "data/facts.jsonl" and config["model"]["path"] == str(tiny_model_dir)
    assert os.access(bundle / "slurm-job.sh", os.X_OK)
    assert subprocess.run(["bash", "-n", str(bundle / "slurm-job.sh")]).returncode == 0

    # From a config file, with the model copied in; a non-empty target is refused.
    cfg = tmp_path / "setup.toml"
    cfg.write_text(config_to_toml(tiny_config(tiny_model_dir, single.parent / "facts.jsonl")))
    assert main(["cluster-bundle", str(cfg), str(tmp_path / "b2"), "--with-model", "--nodes", "4"]) == 0
    assert (tmp_path / "b2" / "model" / "config.json").is_file()
    assert "#SBATCH --nodes=4" in (tmp_path / "b2" / "slurm-job.sh").read_text()
    assert main(["cluster-bundle", str(cfg), str(tmp_path / "b2")]) == 2


@pytest.mark.slow  # a torchrun launch
def test_a_run_that_starts_from_an_adapter_takes_its_copy_along_and_trains_from_it(
    reference, tmp_path, tiny_model_dir
):
    import shutil
    import tomllib

    single, _bundle = reference
    start = tmp_path / "sft-run"  # the adapter the run starts from; gone before the bundle runs
    shutil.copytree(single, start)
    cfg = tmp_path / "dpo.toml"
    config = tiny_config(tiny_model_dir, single.parent / "facts.jsonl", training__max_steps=2, **EXACT)
    cfg.write_text(config_to_toml(config.with_overrides({"training.init_adapter": str(start)})))
    bundle = tmp_path / "bundle"
    assert main(["cluster-bundle", str(cfg), str(bundle)]) == 0

    copied = bundle / "init_adapter"
    assert sorted(p.name for p in copied.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert (copied / name).read_bytes() == (start / "adapter" / name).read_bytes()
    assert tomllib.loads((bundle / "config.toml").read_text())["training"]["init_adapter"] == "init_adapter"
    listed = {f["path"] for f in json_of(bundle / "bundle.json")["files"]}
    assert {"init_adapter/adapter_config.json", "init_adapter/adapter_model.safetensors"} <= listed

    shutil.rmtree(start)  # the cluster has only the bundle
    done = subprocess.run(
        [str(bundle / "launch-torchrun.sh")],
        cwd=tmp_path,  # not the bundle: the scripts find their files from where they are
        env=bundle_env(NPROC="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = bundle / "runs" / "dpo"  # named after the config file it was made from
    messages = [e.get("message", "") for e in read_events(run / "events.jsonl")]
    assert f"Training on from the adapter in {copied}." in messages
    assert states(run)[-1] == "done"


def test_a_bundle_refuses_a_starting_adapter_that_is_not_there(tmp_path, capsys, tiny_model_dir):
    cfg = tmp_path / "dpo.toml"
    config = tiny_config(tiny_model_dir, write_facts(tmp_path))
    cfg.write_text(config_to_toml(config.with_overrides({"training.init_adapter": str(tmp_path / "gone")})))
    assert main(["cluster-bundle", str(cfg), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "holds no LoRA adapter" in err and len(err.strip().splitlines()) <= 2
    assert not (tmp_path / "out").exists()


def json_of(path: Path) -> dict:
    import json

    return json.loads(path.read_text())


def write_facts(folder: Path) -> Path:
    from testkit.tiny_model import fact_rows, write_jsonl

    return write_jsonl(folder / "facts.jsonl", fact_rows(8))


def test_bad_sources_are_refused_with_what_to_do(tmp_path, capsys, tiny_model_dir):
    assert main(["cluster-bundle", str(tmp_path), str(tmp_path / "out")]) == 2
    assert "not a run folder, a project folder or a config file" in capsys.readouterr().err
    cfg = tmp_path / "setup.toml"
    cfg.write_text(config_to_toml(tiny_config(tiny_model_dir, tmp_path / "missing.jsonl")))
    assert main(["cluster-bundle", str(cfg), str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.mark.gpu
def test_the_same_command_on_one_gpu(reference):
    """With CUDA: the bundle's torchrun script on one GPU (and on two when the machine has them)."""
    import torch

    _single, bundle = reference
    for nproc in sorted({1, min(2, torch.cuda.device_count())}):
        run = bundle / "runs" / f"gpu-{nproc}"
        done = subprocess.run(
            [str(bundle / "launch-torchrun.sh"), "--max-steps", "4"],
            cwd=bundle,
            env=bundle_env(NPROC=str(nproc), RUN_DIR=str(run)),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        model = next(e for e in read_events(run / "events.jsonl") if e["type"] == "model")
        assert model["device"] == "cuda" and model["world_size"] == nproc and model["load_in_4bit"]
        assert states(run)[-1] == "done"
