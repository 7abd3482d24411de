"""`whetstone-engine models ...`: list, add, remove and import models (see engine.models.library).

`models import-gguf --progress-json` is what the GUI runs as a child process: stdout carries
one JSON object per line, {"progress": 0.35, "message": "..."}, then {"done": "/folder"}, or
{"error": "...", "hint": "..."} just before the usual `error:` line and exit code 2.
SIGTERM stops it like Ctrl+C (exit 3): the staging folder is removed and nothing is left.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.cli.progress import ProgressOutput, sigterm_stops
from engine.cli.protocol import EXIT_DONE
from engine.errors import UserError
from engine.models.info import SOURCE_LABELS, format_count, status_text
from engine.util.units import format_size


def add_parser(sub) -> None:
    """Add the `models` command to the caller's subparsers (their parser class is reused)."""
    models = sub.add_parser("models", help="list, add, remove and import local models")
    commands = models.add_subparsers(dest="models_command", required=True, parser_class=type(models))

    listing = commands.add_parser("list", help="every model Whetstone knows, with size and status")
    listing.add_argument("--json", action="store_true", help="print a JSON list")

    add = commands.add_parser("add", help="add a local Hugging Face model folder to the library")
    add.add_argument("path")
    remove = commands.add_parser("remove", help="forget an added folder (its files are not touched)")
    remove.add_argument("path")

    allow = commands.add_parser("allow-remote-code", help="let a model folder run its own Python code")
    allow.add_argument("path")
    allow.add_argument("--revoke", action="store_true", help="withdraw the permission")

    gguf = commands.add_parser("import-gguf", help="convert a .gguf file into a model folder")
    gguf.add_argument("file")
    gguf.add_argument("--name", help="folder name under <data dir>/models (default: the file name)")
    gguf.add_argument("--progress-json", action="store_true", help="one JSON object per line on stdout")


def run(args: argparse.Namespace) -> int:
    handler = {
        "list": _list,
        "add": _add,
        "remove": _remove,
        "allow-remote-code": _allow,
        "import-gguf": _import_gguf,
    }[args.models_command]
    return handler(args)


def _list(args: argparse.Namespace) -> int:
    from engine.models.library import ModelLibrary

    infos = ModelLibrary().scan()
    if args.json:
        print(json.dumps([info.as_dict() for info in infos], ensure_ascii=False))
        return EXIT_DONE
    header = ("NAME", "SOURCE", "ARCHITECTURE", "PARAMS", "CONTEXT", "CHAT", "4-BIT", "STATUS")
    rows = [header] + [
        (
            info.name,
            SOURCE_LABELS.get(info.source, info.source),
            info.architecture or "-",
            format_count(info.parameters),
            str(info.context_length or "-"),
            "yes" if info.has_chat_template else "no",
            format_size(info.memory_4bit_bytes),
            status_text(info),
        )
        for info in infos
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    return EXIT_DONE


def _add(args: argparse.Namespace) -> int:
    from engine.models.library import ModelLibrary

    info = ModelLibrary().add_folder(args.path)
    print(f"Added {info.name} ({info.path})")
    print(
        f"  {info.architecture or '?'}, {format_count(info.parameters)} parameters, context "
        f"{info.context_length or '?'}, chat template {'yes' if info.has_chat_template else 'no'}, "
        f"about {format_size(info.memory_4bit_bytes)} of weights in 4-bit"
    )
    if info.needs_remote_code and not info.remote_code_allowed:
        print(
            "  It needs its own Python code. Only if you trust it: "
            f"whetstone-engine models allow-remote-code {info.path}"
        )
    return EXIT_DONE


def _remove(args: argparse.Namespace) -> int:
    from engine.models.library import ModelLibrary

    library = ModelLibrary()
    path = Path(args.path).expanduser().resolve()
    if path not in library.added_folders():
        raise UserError(
            f"{path} is not a folder added to the library.",
            "Only added folders can be removed; imported and HF-cache models are listed because "
            "they are on disk.",
            "model",
        )
    library.remove(path)
    print(f"Removed {path} from the library (its files are untouched).")
    return EXIT_DONE


def _allow(args: argparse.Namespace) -> int:
    from engine.models.library import ModelLibrary

    path = Path(args.path).expanduser().resolve()
    if not path.is_dir():
        raise UserError(f"{path} is not a model folder.", "Pass the folder that holds config.json.", "model")
    ModelLibrary().set_remote_code_allowed(path, not args.revoke)
    print(f"{path} may {'no longer ' if args.revoke else ''}run its own Python code.")
    return EXIT_DONE


def _import_gguf(args: argparse.Namespace) -> int:
    from engine.models.library import import_gguf

    out = ProgressOutput(args.progress_json)
    try:
        with sigterm_stops():  # the GUI cancels by terminating us: clean up like Ctrl+C
            folder = import_gguf(args.file, name=args.name, progress=out.progress)
    except UserError as exc:
        out.error(exc)
        raise
    out.done(folder)
    return EXIT_DONE
