"""A folder a user carries to a cluster: the run's settings, a copy of its data, launch scripts.

    OUT_DIR/config.toml          the run's settings (model and data are passed by the scripts)
    OUT_DIR/data/...             copies of the training (and validation) data
    OUT_DIR/model/               the base model, only when asked for (it can be gigabytes)
    OUT_DIR/init_adapter/        the adapter the run starts from (training.init_adapter), if any
    OUT_DIR/train-env.sh         shared by the scripts: checks, paths, the train command
    OUT_DIR/launch-torchrun.sh   one machine, one process per GPU
    OUT_DIR/slurm-job.sh         several machines under Slurm (sbatch), torchrun on each
    OUT_DIR/README.md            how to use it
    OUT_DIR/bundle.json          what is in it: source, Whetstone version, file sizes and sha256

The scripts run `python -m torch.distributed.run ... -m engine.cli train`, the same engine
as the app; rerunning a script continues the run from its last complete checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from engine import __version__
from engine.config import RunConfig, config_to_toml
from engine.errors import ConfigError
from engine.util.files import (
    TEMP_MARKER,
    atomic_write_text,
    copy_tree,
    discard_temp_dir,
    is_inside,
    make_temp_dir,
    prepare_output_folder,
    replace_dir,
)
from engine.util.units import format_size

SCRIPTS = ("train-env.sh", "launch-torchrun.sh", "slurm-job.sh")
INIT_ADAPTER = "init_adapter"  # the bundle's copy of training.init_adapter


@dataclass
class ClusterBundle:
    folder: Path
    files: list[dict]
    size: int


def write_cluster_bundle(
    config: RunConfig,
    out_dir: str | Path,
    name: str,
    source: str,
    *,
    with_model: bool = False,
    nodes: int = 2,
    gpus_per_node: int = 8,
) -> ClusterBundle:
    """Write the bundle into `out_dir` (new or empty); all or nothing (staged, then renamed)."""
    out_dir = Path(out_dir).expanduser().resolve()
    if nodes < 1 or gpus_per_node < 1:
        raise ConfigError(f"nodes = {nodes}, gpus per node = {gpus_per_node}: both must be at least 1.")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConfigError(
            f"{out_dir} already exists and is not empty.", "Choose a new folder for the bundle."
        )
    train_data = _existing(config.data.path, "data.path", "training data")
    validation = (
        _existing(config.data.validation_path, "data.validation_path", "validation data")
        if config.data.validation_path
        else None
    )
    # A run that trains on from an adapter (dpo on top of an sft run) needs it there too: a local
    # path in the bundle's config would name nothing on the cluster.
    init_adapter = None
    if config.training.init_adapter:
        from engine.models.adapters import check_adapter

        init_adapter = check_adapter(config.training.init_adapter).path.resolve()
    model = Path(config.model.path).expanduser() if config.model.path else None
    if with_model:
        from engine.models.loading import inspect_model_folder

        model = inspect_model_folder(config.model).path
    # The bundle must not lie inside what it copies: the copy would copy itself until the disk is full.
    for folder, what in (
        (model if with_model else None, "base model"),
        (train_data, "training data"),
        (validation, "validation data"),
        (init_adapter, "starting adapter"),
    ):
        if folder is not None and folder.is_dir() and is_inside(out_dir, folder):
            raise ConfigError(
                f"The bundle folder {out_dir} is inside the {what} folder {folder.resolve()}, "
                "which goes into the bundle.",
                "Pick a bundle folder outside it.",
            )
    prepare_output_folder(out_dir.parent, "the cluster bundle")

    staging = make_temp_dir(out_dir.with_name(f".{out_dir.name}.partial"))
    try:
        (staging / "data").mkdir()
        data_name = _copy(train_data, staging / "data" / train_data.name)
        validation_name = None
        if validation is not None:
            target = (
                validation.name if validation.name != train_data.name else f"validation-{validation.name}"
            )
            validation_name = _copy(validation, staging / "data" / target)
        if with_model:
            copy_tree(model, staging / "model")
        if init_adapter is not None:
            _copy_adapter(init_adapter, staging / INIT_ADAPTER)
        # Paths in the bundle's config are relative to the bundle; the scripts pass absolute ones.
        bundled = config.with_overrides(
            {
                "data.path": f"data/{data_name}",
                "data.validation_path": f"data/{validation_name}" if validation_name else "",
                "model.path": "model" if with_model else str(model or ""),
                "training.init_adapter": INIT_ADAPTER if init_adapter is not None else "",
            }
        )
        _write(staging / "config.toml", config_to_toml(bundled))
        values = {
            "NAME": _safe_name(name),
            "MODEL": "" if with_model else str(model or ""),
            "DATA": f"data/{data_name}",
            "VALIDATION": f"data/{validation_name}" if validation_name else "",
            "INIT_ADAPTER": INIT_ADAPTER if init_adapter is not None else "",
            "NODES": str(nodes),
            "GPUS": str(gpus_per_node),
            "VERSION": __version__,
        }
        for script in SCRIPTS:
            _write(staging / script, _fill(_TEMPLATES[script], values), mode=0o755)
        _write(staging / "README.md", _fill(_README, values))
        files = _manifest(staging)
        size = sum(f["size"] for f in files)
        _write(
            staging / "bundle.json",
            json.dumps(
                {
                    "whetstone_version": __version__,
                    "name": name,
                    "source": source,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "model_included": with_model,
                    "base_model": str(config.model.path),
                    "per_process_batch": config.training.batch_size,
                    "gradient_accumulation": config.training.gradient_accumulation,
                    "files": files,
                },
                indent=2,
            )
            + "\n",
        )
        replace_dir(staging, out_dir)
    except BaseException:
        discard_temp_dir(staging)
        raise
    return ClusterBundle(out_dir, files, size)


def describe(bundle: ClusterBundle) -> str:
    return (
        f"Cluster bundle written to {bundle.folder} "
        f"({len(bundle.files)} files, {format_size(bundle.size)}).\n"
        f"One machine:  cd {bundle.folder} && ./launch-torchrun.sh\n"
        f"Slurm:        cd {bundle.folder} && sbatch slurm-job.sh\n"
        f"See {bundle.folder / 'README.md'}."
    )


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    atomic_write_text(path, text)
    path.chmod(mode)  # readable by the cluster's other users and jobs, like a copied file


def _existing(value: str, field: str, what: str) -> Path:
    path = Path(value).expanduser() if value else None
    if path is None or not path.exists():
        raise ConfigError(
            f"The {what} ({field} = {value!r}) does not exist.", "Pick an existing data file first."
        )
    from engine.data.source import check_source

    check_source(path, f"The {what}")  # a FIFO or an unreadable file: refused before anything is copied
    return path.resolve()


def _copy(source: Path, target: Path) -> str:
    copy_tree(source, target)  # a file, or a datasets.save_to_disk folder
    return target.name


def _copy_adapter(source: Path, target: Path) -> None:
    """The adapter's config and weights only: a checkpoint folder also holds optimizer state."""
    from engine.models.adapters import CONFIG_NAME, WEIGHTS_NAME

    target.mkdir()
    for name in (CONFIG_NAME, WEIGHTS_NAME):  # check_adapter let only safetensors weights through
        copy_tree(source / name, target / name)


def _safe_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.")
    return cleaned or "run"


def _fill(template: str, values: dict[str, str]) -> str:
    # {{NAME}} placeholders: bash's own ${...} stays untouched.
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def _manifest(folder: Path) -> list[dict]:
    files = []
    # The temp marker is ours while writing; replace_dir drops it, so it is not in the bundle.
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p != folder / TEMP_MARKER):
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda h=handle: h.read(1 << 20), b""):
                digest.update(block)
        files.append(
            {
                "path": path.relative_to(folder).as_posix(),
                "size": path.stat().st_size,
                "sha256": digest.hexdigest(),
            }
        )
    return files


_TRAIN_ENV = r"""# Sourced by launch-torchrun.sh and slurm-job.sh: paths, checks and the train command.
# Environment you may set: PYTHON (a Python with Whetstone installed), MODEL (the base model
# folder on this machine), RUN_DIR (where the run is written; on a shared filesystem for Slurm).
BUNDLE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
if [ -z "${MODEL:-}" ]; then
    if [ -d "$BUNDLE/model" ]; then MODEL="$BUNDLE/model"; else MODEL="{{MODEL}}"; fi
fi
RUN_DIR="${RUN_DIR:-$BUNDLE/runs/{{NAME}}}"

if ! "$PYTHON" -c "import engine.cli" 2>/dev/null; then
    echo "error: $PYTHON cannot import Whetstone's engine. Install Whetstone {{VERSION}} (see README.md)," \
         "or set PYTHON=/path/to/venv/bin/python." >&2
    exit 2
fi
if [ ! -f "$MODEL/config.json" ]; then
    echo "error: the base model folder '$MODEL' is missing here (no config.json)." \
         "Copy the model to this machine and set MODEL=/path/to/model." >&2
    exit 2
fi

TRAIN_ARGS=(train --config "$BUNDLE/config.toml" --model "$MODEL" --data "$BUNDLE/{{DATA}}" \
    --output "$RUN_DIR")
if [ -n "{{VALIDATION}}" ]; then TRAIN_ARGS+=(--validation-data "$BUNDLE/{{VALIDATION}}"); fi
if [ -n "{{INIT_ADAPTER}}" ]; then TRAIN_ARGS+=(--init-adapter "$BUNDLE/{{INIT_ADAPTER}}"); fi
# Running a script again continues the run from its last complete checkpoint.
if [ -f "$RUN_DIR/config.toml" ]; then TRAIN_ARGS+=(--resume); fi

# After torchrun: exit like `whetstone-engine train` (0 done, 3 stopped with a checkpoint). Under
# torchrun a stopped rank exits 0, since torchrun would call any other code a crash.
finish() {
    local code=$1 state
    # engine.runs judges the run (light: no torch); a pause is a stop with a checkpoint too.
    state=$("$PYTHON" -c \
        'import sys; from engine.runs.state import summarize_run; print(summarize_run(sys.argv[1]).state)' \
        "$RUN_DIR" || true)
    if [ "$code" = 0 ] && { [ "$state" = stopped ] || [ "$state" = paused ]; }; then
        echo "Stopped with a checkpoint; run this script again to continue."
        exit 3
    fi
    exit "$code"
}
"""

_LAUNCH = r"""#!/usr/bin/env bash
# Train on the GPUs of this machine: one process per GPU, data-parallel QLoRA.
#   ./launch-torchrun.sh [more `whetstone-engine train` flags, e.g. --max-steps 2000]
# NPROC sets the number of processes (default: one per GPU that nvidia-smi lists).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/train-env.sh"
if [ -z "${NPROC:-}" ]; then
    NPROC=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
    [ "${NPROC:-0}" -ge 1 ] || NPROC=1
fi
echo "Training {{NAME}} with $NPROC process(es) into $RUN_DIR"
code=0
"$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" \
    -m engine.cli "${TRAIN_ARGS[@]}" "$@" || code=$?
finish "$code"
"""

_SLURM = r"""#!/usr/bin/env bash
# Train on several machines under Slurm: submit from the bundle folder with `sbatch slurm-job.sh`.
# One task per node runs torchrun, which starts one process per GPU; they meet at the first node.
# The bundle folder (and RUN_DIR) must be on a filesystem every node sees.
#SBATCH --job-name=whetstone-{{NAME}}
#SBATCH --nodes={{NODES}}
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node={{GPUS}}
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --output=slurm-%x-%j.out
# SIGTERM five minutes before the time limit: every rank saves a checkpoint at the next step.
#SBATCH --signal=TERM@300
set -euo pipefail
# sbatch runs a copy of this script; the bundle is the folder it was submitted from.
cd "${SLURM_SUBMIT_DIR:-$(dirname "${BASH_SOURCE[0]}")}"
source ./train-env.sh
GPUS="${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-{{GPUS}}}}"
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
PORT="${MASTER_PORT:-29500}"
echo "Training {{NAME}} on $SLURM_NNODES node(s) x $GPUS GPU(s) into $RUN_DIR (rendezvous $HEAD:$PORT)"
code=0
srun --kill-on-bad-exit=1 "$PYTHON" -m torch.distributed.run \
    --nnodes "$SLURM_NNODES" --nproc_per_node "$GPUS" \
    --rdzv_id "$SLURM_JOB_ID" --rdzv_backend c10d --rdzv_endpoint "$HEAD:$PORT" \
    -m engine.cli "${TRAIN_ARGS[@]}" "$@" || code=$?
finish "$code"
"""

_README = """# Whetstone cluster bundle: {{NAME}}

Data-parallel QLoRA: every process loads its own 4-bit copy of the base model on its own GPU
and trains on its share of each batch; rank 0 writes the run folder (events, checkpoints,
adapter), which the Whetstone app opens like any run (Project → open the folder, or copy it
into a project's `runs/`).

## On the cluster

1. Install Whetstone {{VERSION}} into a virtual environment (offline: the wheelhouse, see
   Whetstone's README, "Air-gapped installation"). Set `PYTHON=/path/to/venv/bin/python`.
2. Copy the base model folder to the cluster and set `MODEL=/path/to/model` (not needed when
   the bundle has a `model/` folder).
3. One machine, all its GPUs: `./launch-torchrun.sh` (`NPROC=4 ./launch-torchrun.sh` for 4).
   Several machines: edit the `#SBATCH` lines of `slurm-job.sh` (nodes, GPUs per node, time),
   then `sbatch slurm-job.sh` from this folder.
4. The run is written to `runs/{{NAME}}/` (or `RUN_DIR`). Running the same script again
   continues from the last complete checkpoint; add `--max-steps N` to train further.

## What changes with more processes

`training.batch_size` in `config.toml` is per process: the global batch is
batch_size × gradient_accumulation × processes. To keep the batch you tuned on one GPU,
divide `gradient_accumulation` by the number of processes (or pass `--batch-size`).
Events carry `world_size`; tokens/s is the sum over all processes.

A run that starts from an adapter (`training.init_adapter`) trains on from its copy in
`init_adapter/`, which the scripts pass with `--init-adapter`.

`bundle.json` lists every file with its sha256, so a copy can be checked after transfer.
"""

_TEMPLATES = {"train-env.sh": _TRAIN_ENV, "launch-torchrun.sh": _LAUNCH, "slurm-job.sh": _SLURM}
