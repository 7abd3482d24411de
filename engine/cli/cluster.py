"""`whetstone-engine cluster-bundle SOURCE OUT_DIR`: a folder to train a run on a cluster.

SOURCE is a run folder (its config.toml), a project folder (its project.toml) or a config
TOML file. See engine.training.cluster_bundle for what the folder holds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.protocol import EXIT_DONE
from engine.errors import ConfigError


def add_parser(sub) -> None:
    """Add the `cluster-bundle` command to the caller's subparsers."""
    bundle = sub.add_parser(
        "cluster-bundle",
        help="write a folder (config, data, torchrun and Slurm scripts) to train on a cluster",
    )
    bundle.add_argument("source", help="run folder, project folder, or config TOML file")
    bundle.add_argument("out_dir", help="folder to create (new or empty)")
    bundle.add_argument(
        "--with-model", action="store_true", help="copy the base model folder into the bundle too"
    )
    bundle.add_argument("--nodes", type=int, default=2, help="machines in the Slurm script (default 2)")
    bundle.add_argument(
        "--gpus-per-node", type=int, default=8, help="GPUs per machine in the Slurm script (default 8)"
    )


def source_config(source: Path):
    """(config, name) from a run folder, a project folder or a config file."""
    from engine.config import load_config

    if source.is_file():
        return load_config(source), source.stem
    if (source / "config.toml").is_file():
        return load_config(source / "config.toml"), source.name
    if (source / "project.toml").is_file():
        from engine.workspace import load_project_config

        return load_project_config(source), source.name
    raise ConfigError(
        f"{source} is not a run folder, a project folder or a config file.",
        "Pass a run folder (it holds config.toml), a project folder (project.toml) or a TOML file.",
    )


def run(args: argparse.Namespace) -> int:
    from engine.training.cluster_bundle import describe, write_cluster_bundle

    source = Path(args.source).expanduser().resolve()
    config, name = source_config(source)
    bundle = write_cluster_bundle(
        config,
        args.out_dir,
        name,
        str(source),
        with_model=args.with_model,
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
    )
    print(describe(bundle))
    return EXIT_DONE
