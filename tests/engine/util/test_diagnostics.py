"""Diagnostics for bug reports, and the `diagnostics` / `project` commands."""

from __future__ import annotations

import json

import pytest

from engine.cli import workspace as cli_workspace
from engine.cli.main import _Parser
from engine.errors import UserError
from engine.util import diagnostics

KEYS = {
    "whetstone_version",
    "python_version",
    "python_executable",
    "platform",
    "torch_version",
    "cuda_available",
    "cuda_version",
    "gpus",
    "cpu",
    "cpu_avx512_bf16",
    "engine_cpu_allocator",
    "transformers_version",
    "peft_version",
    "bitsandbytes_version",
    "accelerate_version",
    "datasets_version",
    "gguf_version",
    "pyside6_version",
    "bitsandbytes_backend",
    "offline_env",
    "whetstone_home",
}


@pytest.fixture(scope="module")
def report():
    return diagnostics.collect()


def test_collect_reports_every_fact(report):
    assert KEYS <= set(report)
    assert report["whetstone_version"].startswith("0.")
    assert report["transformers_version"].startswith("5.") and report["bitsandbytes_version"].startswith(
        "0.50"
    )
    assert report["offline_env"]["HF_HUB_OFFLINE"] == "1"
    json.dumps(report)  # the GUI and `diagnostics --json` serialise it as it is
    if report["cuda_available"] is not True:
        assert report["gpus"] == [] and report["bitsandbytes_backend"].startswith("CPU")


def test_a_failing_probe_becomes_an_error_value(monkeypatch):
    def broken():
        raise RuntimeError("driver exploded\nbadly")

    monkeypatch.setattr(diagnostics, "_cpu_name", broken)
    monkeypatch.setattr(diagnostics, "_gpus", broken)
    report = diagnostics.collect()
    assert report["cpu"].startswith("error: RuntimeError: driver exploded")
    assert report["gpus"].startswith("error:")
    text = diagnostics.format_report(report)
    assert "cpu: error: RuntimeError: driver exploded badly" in text.splitlines()


def test_format_report_is_one_line_per_key(report):
    lines = diagnostics.format_report(report).splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == list(report)
    print("\n" + "\n".join(lines))


def test_device_summary():
    gpu = {"name": "NVIDIA H100 80GB HBM3", "total_bytes": 85 * 2**30, "free_bytes": int(75.1 * 2**30)}
    assert (
        diagnostics.device_summary({"cuda_available": True, "gpus": [gpu]})
        == "NVIDIA H100 80GB HBM3 · 75.1 GiB free"
    )
    assert diagnostics.device_summary({"cuda_available": True, "gpus": [gpu, gpu]}).endswith("(+1 more GPU)")
    assert diagnostics.device_summary({"cuda_available": False, "gpus": []}) == "CPU (no CUDA GPU)"
    assert (
        diagnostics.device_summary({"cuda_available": "error: no torch", "gpus": "error: no torch"})
        == "CPU (no CUDA GPU)"
    )


def test_device_summary_here(report):
    line = diagnostics.device_summary(report)
    assert line == "CPU (no CUDA GPU)" if report["cuda_available"] is not True else "GiB free" in line


# CLI (parsed the way engine.cli.main parses; engine.cli.main dispatches to cli_workspace.run)


def parse(*argv):
    parser = _Parser(prog="whetstone-engine")
    cli_workspace.add_parsers(parser.add_subparsers(dest="command", required=True, parser_class=_Parser))
    return parser.parse_args(argv)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("WHETSTONE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_diagnostics_command(capsys, report, monkeypatch):
    monkeypatch.setattr(diagnostics, "collect", lambda: report)
    assert cli_workspace.run(parse("diagnostics")) == 0
    assert "torch_version: " in capsys.readouterr().out
    assert cli_workspace.run(parse("diagnostics", "--json")) == 0
    assert KEYS <= set(json.loads(capsys.readouterr().out))


def test_project_commands(home, tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hi"}\n')
    assert cli_workspace.run(parse("project", "list")) == 0
    assert "No projects" in capsys.readouterr().out
    assert (
        cli_workspace.run(parse("project", "create", "Bot", "--model", str(tmp_path), "--data", str(data)))
        == 0
    )
    folder = capsys.readouterr().out.strip()
    assert folder == str(home / "projects" / "bot")
    assert cli_workspace.run(parse("project", "list", "--json")) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in listed] == ["Bot"] and listed[0]["datasets"][0]["name"] == "d.jsonl"
    assert cli_workspace.run(parse("project", "show", folder)) == 0
    out = capsys.readouterr().out
    assert "Name: Bot" in out and "d.jsonl" in out and f"Model: {tmp_path.resolve()}" in out
    with pytest.raises(UserError, match="already exists"):
        cli_workspace.run(parse("project", "create", "bot"))
    with pytest.raises(UserError, match="does not exist"):
        cli_workspace.run(parse("project", "show", str(tmp_path / "nope")))
    with pytest.raises(
        UserError, match="Model folder .* does not exist"
    ):  # a typo, refused before any folder is made
        cli_workspace.run(parse("project", "create", "Typo", "--model", str(tmp_path / "no-such-model")))
    assert not (home / "projects" / "typo").exists()


def test_bad_project_flags_are_one_error_line(capsys):
    with pytest.raises(SystemExit) as info:
        parse("project", "create")
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_the_engine_cli_runs_the_project_commands(home, capsys):
    from engine.cli.main import main

    assert main(["project", "create", "Via CLI"]) == 0
    assert capsys.readouterr().out.strip() == str(home / "projects" / "via-cli")
    assert main(["project", "create", "via cli"]) == 2  # bad input: one `error:` line, exit 2
    err = capsys.readouterr().err
    assert err.startswith("error: A project named 'via cli' already exists.") and len(err.splitlines()) == 1
    assert main(["project", "list", "--json"]) == 0
    assert [p["name"] for p in json.loads(capsys.readouterr().out)] == ["Via CLI"]
