"""The CLI protocol in one place: exit codes and the `error:` line, written by the CLI, read by the app."""

from __future__ import annotations

import ast
from pathlib import Path

from engine.cli import protocol
from engine.cli.main import main

REPO = Path(__file__).resolve().parents[3]


def test_error_lines_round_trip():
    line = protocol.error_line("Model folder /m does not exist.\n  Check the path.")
    assert line == "error: Model folder /m does not exist. Check the path."
    output = "[ 10%] Loading\nerror: first\nsome noise\n" + line + "\n"
    assert protocol.last_error_line(output) == line
    assert protocol.error_message(line) == "Model folder /m does not exist. Check the path."
    internal = protocol.internal_error_line(ValueError("boom"), "/logs/engine.log")
    assert internal == "internal error: ValueError: boom (traceback in /logs/engine.log)"
    assert protocol.error_message(internal) == internal  # a bug keeps its label
    assert protocol.last_error_line("no errors here\n") == ""


def test_stopped_on_request():
    assert protocol.stopped_on_request(protocol.EXIT_STOPPED, "stopped.")
    assert protocol.stopped_on_request(protocol.EXIT_NO_STATUS, "The engine process was stopped.")
    assert not protocol.stopped_on_request(protocol.EXIT_NO_STATUS, "error: bad input")
    assert not protocol.stopped_on_request(protocol.EXIT_BAD_INPUT, "")


def test_an_internal_error_line_stays_readable(capsys, tmp_path, monkeypatch):
    """A 40 kB exception text (a copy that recursed 185 levels) used to be printed whole."""
    from engine.cli import workspace as cli_workspace

    monkeypatch.setenv("WHETSTONE_HOME", str(tmp_path))
    monkeypatch.setattr(cli_workspace, "run", lambda _args: (_ for _ in ()).throw(OSError("x" * 40_000)))
    assert main(["project", "list"]) == protocol.EXIT_INTERNAL
    line = capsys.readouterr().err.strip()
    assert line.startswith("internal error: OSError: xxx") and len(line) < 700 and "engine.log" in line


def test_the_app_reads_the_protocol_from_here():
    """No app module compares exit codes as bare numbers or parses the error prefix itself."""
    offenders = []
    for path in sorted((REPO / "app").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if '"error: "' in source or "'error: '" in source or '"internal error:"' in source:
            offenders.append(f"{path.name}: parses the error prefix")
        for node in ast.walk(ast.parse(source)):
            if (
                isinstance(node, ast.Compare)
                and isinstance(node.left, ast.Name)
                and node.left.id in ("code", "exit_code", "returncode")
            ):
                for comparator in node.comparators:
                    values = comparator.elts if isinstance(comparator, ast.Tuple) else [comparator]
                    if any(isinstance(v, ast.Constant | ast.UnaryOp) for v in values):
                        offenders.append(f"{path.name}:{node.lineno}: compares {node.left.id} with a number")
    assert offenders == []
