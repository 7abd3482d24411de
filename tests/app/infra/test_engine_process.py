"""The engine child-process wrapper: exit code and the CLI's `error:` line come back as one signal."""

from __future__ import annotations

from app.infra.engine_process import EngineProcess
from engine.cli.protocol import EXIT_BAD_INPUT, EXIT_DONE


def test_an_engine_process_reports_its_error_line(qtbot):
    process = EngineProcess(["models", "add", "/no/such/folder"])
    ended = []
    process.ended.connect(lambda code, line: ended.append((code, line)))
    process.start()
    qtbot.waitUntil(lambda: bool(ended), timeout=60000)
    code, line = ended[0]
    assert code == EXIT_BAD_INPUT and line.startswith("error:") and "does not exist" in line


def test_stdout_that_is_not_a_json_object_is_kept_as_text(qtbot, home):
    process = EngineProcess(["project", "list", "--json"])  # one JSON array, not an event object
    messages, ended = [], []
    process.message.connect(messages.append)
    process.ended.connect(lambda code, line: ended.append(code))
    process.start()
    qtbot.waitUntil(lambda: bool(ended), timeout=60000)
    assert ended == [EXIT_DONE] and messages == [] and process.output_text() == "[]"
