"""`whetstone-engine diagnostics` and `whetstone-engine project ...`: the workspace from a shell.

engine.cli.main adds these parsers and hands `args.command in {"diagnostics", "project"}` to
`run`. Bad input raises UserError, which engine.cli.main turns into one `error:` line, exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from engine.cli.protocol import EXIT_DONE
from engine.errors import UserError
from engine.util.units import format_size

COMMANDS = ("diagnostics", "project")


def add_parsers(sub) -> None:
    """Add the commands to engine.cli.main's subparsers (`sub` was made with its parser_class)."""
    diag = sub.add_parser("diagnostics", help="print versions, devices and settings for a bug report")
    diag.add_argument("--json", action="store_true", help="print one JSON object")

    project = sub.add_parser("project", help="list, create and show projects in the workspace")
    # Same parser class as the parent, so a bad flag here is one `error:` line too.
    actions = project.add_subparsers(dest="project_command", required=True, parser_class=type(project))
    listing = actions.add_parser("list", help="list the workspace's projects")
    listing.add_argument("--json", action="store_true", help="print one JSON array on one line")
    create = actions.add_parser("create", help="create a project (the data file is copied into it)")
    create.add_argument("name")
    create.add_argument("--model", metavar="DIR", help="local Hugging Face model folder")
    create.add_argument("--data", metavar="FILE", help="training data file, copied into the project")
    show = actions.add_parser("show", help="show a project's settings, datasets, runs and exports")
    show.add_argument("dir", help="project folder")
    show.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    if args.command == "diagnostics":
        from engine.util.diagnostics import collect, format_report

        report = collect()
        print(json.dumps(report, ensure_ascii=False) if args.json else format_report(report))
        return EXIT_DONE
    from engine.workspace import Workspace

    workspace = Workspace()
    if args.project_command == "list":
        projects = workspace.list_projects()
        if args.json:
            print(json.dumps([as_json(p) for p in projects], ensure_ascii=False))
        elif not projects:
            print(f"No projects in {workspace.projects_dir}.")
        for project in [] if args.json else projects:
            print(_project_line(project))
        return EXIT_DONE
    if args.project_command == "create":
        if (
            args.model and not Path(args.model).expanduser().is_dir()
        ):  # a typo fails now, not at the first run
            from engine.errors import ModelError

            raise ModelError(
                f"Model folder {args.model} does not exist.", "Check the path; models are never downloaded."
            )
        print(
            workspace.create_project(
                args.name, model=args.model, dataset=Path(args.data) if args.data else None
            )
        )
        return EXIT_DONE
    if args.project_command == "show":
        summary = workspace.summarize(Path(args.dir).expanduser())
        print(json.dumps(as_json(summary), ensure_ascii=False) if args.json else _describe(summary))
        return EXIT_DONE
    raise UserError(f"Unknown project command {args.project_command!r}.")


def as_json(value: Any) -> Any:
    """Summaries (dataclasses with paths and tuples) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [as_json(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def _project_line(project) -> str:
    latest = project.runs[0] if project.runs else None
    runs = f"{len(project.runs)} run{'s' if len(project.runs) != 1 else ''}"
    if latest is not None:
        runs += f", latest {latest.name} {latest.state}"
    problem = f"  PROBLEM: {project.problem}" if project.problem else ""
    return f"{project.name}\t{project.path}\t{runs}{problem}"


def _run_line(run) -> str:
    from engine.runs.names import read_run_name

    title = read_run_name(run.path)
    parts = [f"{run.name} “{title}”" if title else run.name, run.state]
    if run.step is not None:
        parts.append(f"step {run.step}/{run.max_steps or '?'}")
    if run.last_loss is not None:
        parts.append(f"loss {run.last_loss:.4f}")
    if run.updated is not None:
        parts.append(time.strftime("%Y-%m-%d %H:%M", time.localtime(run.updated)))
    if run.message:
        parts.append(run.message)
    return "  " + "  ".join(parts)


def _describe(project) -> str:
    lines = [f"Name: {project.name}", f"Folder: {project.path}", f"Created: {project.created or '?'}"]
    if project.description:
        lines.append(f"Description: {project.description}")
    if project.problem:
        lines.append(f"Problem: {project.problem}")
    lines += [f"Model: {project.model or '(none)'}", f"Dataset: {project.dataset or '(none)'}"]
    lines.append(f"Datasets ({len(project.datasets)}):")
    lines += [f"  {d.name}  {format_size(d.size_bytes)}" for d in project.datasets]
    lines.append(f"Runs ({len(project.runs)}):")
    lines += [_run_line(r) for r in project.runs]
    lines.append(f"Exports ({len(project.exports)}):")
    lines += [f"  {e.name}" for e in project.exports]
    return "\n".join(lines)
