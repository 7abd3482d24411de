"""`whetstone-engine eval`: bad sets and flags: one `error:` line, exit 2; a good call writes its report."""

from __future__ import annotations

import json
import shutil

import pytest
from testkit.engine_helpers import expect_bad_input
from testkit.tiny_model import write_jsonl

from engine.cli.main import main
from engine.eval.report import headline
from engine.runs.state import summarize_run


def test_a_set_with_nothing_usable_names_its_lines(capsys, tiny_model_dir, tmp_path):
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"prompt": ""}\nnot json\n{"expected": "4"}\n')
    expect_bad_input(
        capsys, ["eval", "--model", str(tiny_model_dir), "--set", str(bad)], "broken.jsonl", "line 1"
    )


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--probe", "vibes"], ["--probe"]),
        (["--max-new-tokens", "0"], ["--max-new-tokens"]),
        (["--batch-size", "0"], ["--batch-size"]),
        (["--no-base"], ["--no-base"]),
        (["--adapter", "/nowhere/at/all"], ["/nowhere/at/all"]),
        (["--validation", "a.jsonl", "--no-validation"], ["not allowed"]),
    ],
)
def test_bad_flags(capsys, tiny_model_dir, extra, words):
    expect_bad_input(capsys, ["eval", "--model", str(tiny_model_dir), *extra], *words)


def test_a_folder_that_is_no_model(capsys, tmp_path):
    expect_bad_input(capsys, ["eval", "--model", str(tmp_path)], str(tmp_path))


def test_an_adapter_folder_that_is_not_an_adapter(capsys, tiny_model_dir, tmp_path):
    expect_bad_input(capsys, ["eval", "--model", str(tiny_model_dir), "--adapter", str(tmp_path)], "adapter")


@pytest.mark.slow
def test_report_goes_to_output_stdout_and_the_run_folder(capsys, short_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(short_run, run)  # the fixture is shared read-only; this writes RUN_DIR/evals
    facts = write_jsonl(
        tmp_path / "facts.jsonl", [{"prompt": "Hello?", "expected": "hi", "scorer": "contains"}]
    )
    argv = ["eval", "--adapter", str(run), "--set", str(facts), "--max-new-tokens", "4"]
    code = main([*argv, "--output", str(tmp_path / "out.json"), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    report = json.loads(out)
    assert [m["label"] for m in report["models"]][0] == "Base model"  # --model came from the run
    assert json.loads((tmp_path / "out.json").read_text()) == report
    written = list((run / "evals").glob("*.json"))
    assert len(written) == 1 and json.loads(written[0].read_text()) == report
    assert summarize_run(run).eval_headline == headline(report, run) != ""  # what run lists show

    assert main([*argv, "--progress-json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[-1]["done"].startswith(str(run / "evals"))
    assert all("progress" in line for line in lines[:-1]) and lines[-2]["progress"] == 1.0


@pytest.mark.slow
def test_sigterm_stops_an_evaluation_with_exit_3_and_no_report(tiny_model_dir, tmp_path):
    import signal
    import subprocess

    from testkit.engine_helpers import engine_cmd

    out = tmp_path / "report.json"
    args = ["eval", "--model", str(tiny_model_dir), "--probe", "forgetting", "--progress-json"]
    args += ["--cache-dir", str(tmp_path / "cache"), "--output", str(out)]
    proc = subprocess.Popen(engine_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # the first progress line: it is working
            if json.loads(line).get("progress") is not None:
                break
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 3, err
    assert "stopped." in err and "Traceback" not in err
    assert not out.exists()
