"""`whetstone-engine runs rename RUN_DIR NAME`: give a run a display name (its folder keeps its name)."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.errors import UserError
from engine.runs.names import write_run_name
from engine.runs.state import CONFIG_NAME, EVENTS_NAME


def add_parser(sub) -> None:
    runs = sub.add_parser(
        "runs", help="name runs (the display name shown in lists; the folder keeps its name)"
    )
    actions = runs.add_subparsers(dest="runs_command", required=True, parser_class=type(runs))
    rename = actions.add_parser("rename", help="set a run's display name")
    rename.add_argument("run_dir", metavar="RUN_DIR", help="the run folder")
    rename.add_argument("name", help="the new name (one line, at most 80 characters)")


def check_is_run(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise UserError(
            f"Run folder {run_dir} does not exist.", "Check the path (see `project show`).", kind="io"
        )
    if not ((run_dir / CONFIG_NAME).is_file() or (run_dir / EVENTS_NAME).is_file()):
        raise UserError(
            f"{run_dir} is not a run folder (it has no {CONFIG_NAME} or {EVENTS_NAME}).",
            "Give the folder of a run, e.g. PROJECT/runs/run-20261206-212735.",
            kind="io",
        )


def run(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir).expanduser()
    check_is_run(run_dir)
    name = write_run_name(run_dir, args.name)
    print(f"{run_dir.name} is now named “{name}”.")
    return 0
