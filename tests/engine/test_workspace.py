"""Workspace and projects: create, rename, duplicate, delete, list, first start; run summaries."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib

import pytest

from engine.config import RunConfig
from engine.errors import DataError, UserError
from engine.models.demo import demo_eval_sets, demo_model_dir, load_demo_config
from engine.runs import checkpoints
from engine.runs import events as event_log
from engine.runs import state as runs
from engine.workspace import (
    DEMO_PROJECT,
    Workspace,
    load_project_config,
    save_project_config,
    summarize_run,
)


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path / "ws")


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "mine" / "facts.jsonl"
    path.parent.mkdir()
    path.write_text('{"prompt": "a", "completion": "b"}\n', encoding="utf-8")
    return path


def project_table(folder):
    return tomllib.loads((folder / "project.toml").read_text(encoding="utf-8"))


# Projects


def test_create_makes_the_folders_and_copies_the_dataset(ws, data_file, tmp_path):
    before = (data_file.read_bytes(), data_file.stat().st_mtime_ns)
    folder = ws.create_project("My First Project", model=str(tmp_path / "model"), dataset=data_file)
    assert folder == ws.projects_dir / "my-first-project"
    assert all((folder / sub).is_dir() for sub in ("datasets", "runs", "exports"))
    assert (folder / "datasets" / "facts.jsonl").read_bytes() == before[0]
    assert (data_file.read_bytes(), data_file.stat().st_mtime_ns) == before  # the user's file is untouched
    raw = project_table(folder)
    assert raw["project"]["name"] == "My First Project" and raw["project"]["created"]
    assert raw["data"]["path"] == "datasets/facts.jsonl"  # relative: the project folder can move
    summary = ws.summarize(folder)
    assert summary.problem is None
    assert summary.model == str((tmp_path / "model").resolve())
    assert summary.dataset == str((folder / "datasets" / "facts.jsonl").resolve())
    assert [d.name for d in summary.datasets] == ["facts.jsonl"] and summary.datasets[0].size_bytes > 0
    assert summary.runs == () and summary.exports == ()
    assert [p.name for p in ws.projects_dir.iterdir()] == ["my-first-project"]  # no staging left over


def test_names_that_share_a_slug_get_their_own_folders(ws):
    a = ws.create_project("Café Bot")
    b = ws.create_project("cafe-bot!")
    c = ws.create_project("数据")
    d = ws.create_project("con")
    assert (a.name, b.name, c.name, d.name) == ("cafe-bot", "cafe-bot-2", "project", "con-project")


@pytest.mark.parametrize(
    "name, words",
    [
        ("", "needs a name"),
        ("   ", "needs a name"),
        ("x" * 101, "at most 100"),
        ("two\nlines", "line breaks"),
    ],
)
def test_bad_names_are_refused(ws, name, words):
    with pytest.raises(UserError, match=words) as info:
        ws.create_project(name)
    assert info.value.kind == "config" and info.value.hint
    assert not ws.projects_dir.exists() or not any(ws.projects_dir.iterdir())


def test_duplicate_names_are_refused_whatever_the_case(ws):
    ws.create_project("Support Bot")
    with pytest.raises(UserError, match="already exists"):
        ws.create_project("  support BOT ")
    ws.create_project("x" * 100)  # the limit itself is fine


def test_a_missing_dataset_is_a_data_error(ws, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        ws.create_project("P", dataset=tmp_path / "nope.jsonl")


def test_rename_changes_the_display_name_only(ws):
    folder = ws.create_project("Old name")
    other = ws.create_project("Other")
    ws.rename_project(folder, "New name")
    assert folder.is_dir() and project_table(folder)["project"]["name"] == "New name"
    ws.rename_project(folder, "NEW NAME")  # its own name in another case is not a duplicate
    with pytest.raises(UserError, match="already exists"):
        ws.rename_project(folder, "other")
    with pytest.raises(UserError, match="needs a name"):
        ws.rename_project(other, "")
    assert [p.name for p in ws.list_projects()] == ["NEW NAME", "Other"]


def test_duplicate_copies_settings_and_datasets_but_not_runs(ws, data_file):
    folder = ws.create_project("Bot", dataset=data_file, config=RunConfig().with_overrides({"lora.rank": 8}))
    (folder / "runs" / "run-1").mkdir()
    (folder / "exports" / "bot.gguf").write_bytes(b"x")
    copy = ws.duplicate_project(folder)
    copy2 = ws.duplicate_project(folder)
    named = ws.duplicate_project(folder, "Bot v2")
    assert [ws.summarize(p).name for p in (copy, copy2, named)] == ["Bot copy", "Bot copy 2", "Bot v2"]
    assert load_project_config(copy).lora.rank == 8
    assert (copy / "datasets" / "facts.jsonl").read_bytes() == data_file.read_bytes()
    assert load_project_config(copy).data.path == str((copy / "datasets" / "facts.jsonl").resolve())
    assert list((copy / "runs").iterdir()) == [] and list((copy / "exports").iterdir()) == []
    shutil.rmtree(named / "datasets")  # a project whose datasets folder was deleted by hand
    assert (ws.duplicate_project(named) / "datasets").is_dir()
    with pytest.raises(UserError, match="already exists"):
        ws.duplicate_project(folder, "bot V2")


def test_delete_removes_the_project_and_refuses_foreign_folders(ws, tmp_path):
    folder = ws.create_project("Doomed")
    ws.delete_project(folder)
    assert not folder.exists() and list(ws.projects_dir.iterdir()) == []
    outsider = tmp_path / "precious"
    outsider.mkdir()
    with pytest.raises(UserError, match="not a project"):
        ws.delete_project(outsider)
    assert outsider.is_dir()


def test_delete_is_refused_while_a_run_is_training(ws):
    folder = ws.create_project("Busy")
    run_dir = folder / "runs" / "run-1"
    write_run(run_dir, [status("loading"), status("training")])
    runs.write_pid_file(run_dir)  # this process plays the engine
    with pytest.raises(UserError, match="still training") as info:
        ws.delete_project(folder)
    assert "Stop the run" in info.value.hint and folder.is_dir()
    (run_dir / runs.PID_NAME).unlink()  # the engine was killed: its run is interrupted, deletable
    ws.delete_project(folder)
    assert not folder.exists()


def test_a_broken_project_is_listed_with_its_problem_and_can_be_deleted(ws):
    good = ws.create_project("Good")
    broken = ws.create_project("Broken")
    (broken / "project.toml").write_text("[project\nname = ", encoding="utf-8")
    empty = ws.projects_dir / "empty"
    empty.mkdir()
    (ws.projects_dir / "notes.txt").write_text("not a project")
    listed = {p.path.name: p for p in ws.list_projects()}
    assert set(listed) == {good.name, broken.name, "empty"}
    assert listed["good"].problem is None
    assert "unreadable" in listed["broken"].problem and listed["broken"].name == "broken"
    assert "missing" in listed["empty"].problem
    with pytest.raises(UserError, match="Cannot rename"):
        ws.rename_project(broken, "Fixed")
    with pytest.raises(UserError, match="Cannot duplicate"):
        ws.duplicate_project(broken)
    with pytest.raises(UserError, match="already exists"):
        ws.create_project("BROKEN")  # it is listed under its folder name, so that name is taken
    ws.delete_project(broken)
    assert not broken.exists()


def test_a_settings_error_is_a_problem_not_a_crash(ws):
    folder = ws.create_project("Odd")
    raw = project_table(folder)
    raw["training"]["learning_rate"] = -1.0
    import tomli_w

    (folder / "project.toml").write_text(tomli_w.dumps(raw), encoding="utf-8")
    summary = ws.summarize(folder)
    assert summary.name == "Odd" and "training.learning_rate" in summary.problem


def test_list_tolerates_projects_and_runs_vanishing_mid_scan(ws, monkeypatch):
    a = ws.create_project("A")
    b = ws.create_project("B")
    c = ws.create_project("C")
    for name in ("r1", "r2"):
        write_run(c / "runs" / name, [status("done")])
    real_summarize, real_run = Workspace.summarize, runs.summarize_run

    def summarize_then_vanish(self, path):
        shutil.rmtree(b, ignore_errors=True)  # another window deletes B while we scan
        return real_summarize(self, path)

    def run_vanishes(path):
        if path.name == "r1":
            shutil.rmtree(path)
        return real_run(path)

    monkeypatch.setattr(Workspace, "summarize", summarize_then_vanish)
    monkeypatch.setattr("engine.workspace.summarize_run", run_vanishes)
    listed = ws.list_projects()
    assert [p.path for p in listed] == [a, c]
    assert [r.name for r in listed[1].runs] == ["r2"]


def test_runs_are_listed_newest_first(ws):
    folder = ws.create_project("P")
    write_run(folder / "runs" / "old", [status("done", t=100.0)])
    write_run(folder / "runs" / "newer", [status("done", t=200.0)])
    (folder / "runs" / "just-made").mkdir()  # no events yet: as new as its folder
    assert [r.name for r in ws.summarize(folder).runs] == ["just-made", "newer", "old"]


def test_list_is_sorted_by_name_ignoring_case(ws):
    for name in ("beta", "Alpha", "gamma", "Delta"):
        ws.create_project(name)
    assert [p.name for p in ws.list_projects()] == ["Alpha", "beta", "Delta", "gamma"]
    assert Workspace(ws.root / "nowhere").list_projects() == []


def test_first_start_creates_the_demo_project_exactly_once(ws):
    folder = ws.first_start()
    assert folder is not None and (ws.root / "workspace.toml").is_file()
    assert tomllib.loads((ws.root / "workspace.toml").read_text())["format_version"] == 1
    summary = ws.summarize(folder)
    assert summary.name == DEMO_PROJECT and summary.problem is None
    assert summary.model == str(demo_model_dir().resolve())  # a path only: nothing is converted here
    config = load_project_config(folder)
    demo = load_demo_config()  # resources/demo/demo.toml
    assert (config.training, config.data.max_length) == (demo.training, demo.data.max_length)
    assert config.data.replay_ratio == demo.data.replay_ratio  # the demo's guard against forgetting
    assert (folder / "datasets" / "whetstone_facts.jsonl").stat().st_size > 0
    assert (folder / "eval-sets" / "facts.jsonl").read_bytes() == demo_eval_sets()[0].read_bytes()
    assert ws.first_start() is None
    ws.delete_project(folder)
    assert ws.first_start() is None and ws.list_projects() == []  # a deleted demo stays deleted


def test_first_start_leaves_an_existing_workspace_alone(ws):
    ws.create_project("Mine")
    assert ws.first_start() is None
    assert [p.name for p in ws.list_projects()] == ["Mine"]


def test_project_config_round_trip_keeps_relative_data_paths(ws, data_file, tmp_path):
    folder = ws.create_project("Round trip", dataset=data_file, description="keep me")
    config = load_project_config(folder)
    assert config.data.path == str((folder / "datasets" / "facts.jsonl").resolve())
    outside = tmp_path / "val.jsonl"
    changed = config.with_overrides({"training.max_steps": 7, "data.validation_path": str(outside)})
    save_project_config(folder, changed)
    raw = project_table(folder)
    assert raw["project"]["name"] == "Round trip" and raw["project"]["description"] == "keep me"
    assert raw["data"]["path"] == "datasets/facts.jsonl"
    assert raw["data"]["validation_path"] == str(outside)  # outside the project: stays absolute
    again = load_project_config(folder)
    assert again == changed
    # Moving the whole workspace keeps the dataset reachable.
    moved = shutil.move(str(ws.root), str(tmp_path / "moved"))
    assert load_project_config(os.path.join(moved, "projects", folder.name)).data.path.startswith(moved)


# Run summaries


def event(type_, t=None, **fields):
    return {"type": type_, "time": t if t is not None else time.time(), **fields}


def status(state, **fields):
    return event("status", state=state, **fields)


def metrics(step, loss, **fields):
    return event("metrics", step=step, loss=loss, max_steps=fields.pop("max_steps", 100), **fields)


def write_run(run_dir, events, max_steps=100, tail=""):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(f"[training]\nmax_steps = {max_steps}\n", encoding="utf-8")
    with open(run_dir / "events.jsonl", "w", encoding="utf-8") as handle:
        for e in events:
            handle.write(json.dumps(e) + "\n")  # the same layout as engine.runs.events.EventLog
        handle.write(tail)
    return run_dir


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_pid(run_dir, pid, started=None, hostname=None):
    info = {"pid": pid, "hostname": hostname or socket.gethostname(), "started": started or time.time()}
    (run_dir / runs.PID_NAME).write_text(json.dumps(info))


def test_a_finished_run(tmp_path):
    run_dir = write_run(
        tmp_path / "run",
        [
            event("info", t=100.0),
            status("loading"),
            status("training"),
            metrics(1, 2.5),
            metrics(2, 1.25),
            status("saving"),
            status("done", t=200.0),
        ],
        max_steps=2,
    )
    (run_dir / "adapter").mkdir()
    summary = summarize_run(run_dir)
    assert (summary.name, summary.state, summary.step, summary.max_steps) == ("run", "done", 2, 2)
    assert summary.last_loss == 1.25 and (summary.started, summary.updated) == (100.0, 200.0)
    assert summary.adapter is None and summary.message is None  # no adapter_config.json: not an adapter
    (run_dir / "adapter" / "adapter_config.json").write_text("{}")
    assert summarize_run(run_dir).adapter == run_dir / "adapter"


def test_a_failed_run_carries_its_error_message(tmp_path):
    run_dir = write_run(
        tmp_path / "run",
        [
            status("training"),
            metrics(1, 2.0),
            event("error", kind="oom", message="Out of memory while training.", hint="Try: a batch of 1."),
            status("failed"),
        ],
    )
    summary = summarize_run(run_dir)  # a reopened run says what to do, as the live one did
    assert summary.state == "failed" and summary.message == "Out of memory while training. Try: a batch of 1."


def test_a_stopped_run(tmp_path):
    run_dir = write_run(tmp_path / "run", [status("training"), metrics(3, 1.0), status("stopped", step=3)])
    assert summarize_run(run_dir).state == "stopped"


def test_a_killed_engine_leaves_an_interrupted_run_not_a_running_one(tmp_path):
    run_dir = write_run(tmp_path / "run", [status("loading"), status("training"), metrics(5, 1.0)])
    assert summarize_run(run_dir).state == "interrupted"  # no pid file at all
    write_pid(run_dir, dead_pid())
    assert summarize_run(run_dir).state == "interrupted"
    write_pid(run_dir, os.getpid(), hostname="some-other-machine")
    assert summarize_run(run_dir).state == "interrupted"
    write_pid(run_dir, os.getpid(), started=time.time() - 10 * 24 * 3600)  # pid reused by a newer process
    assert summarize_run(run_dir).state == "interrupted"


def test_a_live_engine_makes_a_running_run(tmp_path):
    run_dir = write_run(tmp_path / "run", [status("loading"), status("training"), metrics(5, 0.5)])
    runs.write_pid_file(run_dir)
    summary = summarize_run(run_dir)
    assert (summary.state, summary.step, summary.last_loss) == ("running", 5, 0.5)
    write_run(run_dir, [])  # the engine has only just started: no status yet
    assert summarize_run(run_dir).state == "running"
    runs.remove_pid_file(run_dir)
    assert not (run_dir / runs.PID_NAME).exists()


def test_a_new_run_and_a_torn_last_line(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    summary = summarize_run(run_dir)
    assert (summary.state, summary.step, summary.started, summary.checkpoints) == ("new", None, None, ())
    write_run(
        run_dir, [status("training"), metrics(1, 2.0)], tail='{"type": "status", "time": 1, "state": "do'
    )
    summary = summarize_run(run_dir)
    assert (summary.state, summary.step) == ("interrupted", 1)
    with pytest.raises(FileNotFoundError):
        summarize_run(tmp_path / "gone")


def test_epoch_based_runs_take_the_step_count_the_trainer_computed(tmp_path):
    run_dir = write_run(tmp_path / "run", [status("training", max_steps=40)], max_steps=0)
    assert summarize_run(run_dir).max_steps == 40
    write_run(run_dir, [status("training", max_steps=40), metrics(1, 1.0, max_steps=41)], max_steps=0)
    assert summarize_run(run_dir).max_steps == 41
    write_run(run_dir, [status("loading")], max_steps=0)
    assert summarize_run(run_dir).max_steps is None


def test_only_complete_checkpoints_are_listed(tmp_path):
    run_dir = write_run(tmp_path / "run", [status("training")])
    done = checkpoints.checkpoints_dir(run_dir) / "checkpoint-2"
    partial = checkpoints.checkpoints_dir(run_dir) / "checkpoint-4"
    for folder in (done, partial):
        folder.mkdir(parents=True)
        (folder / "adapter_model.safetensors").write_bytes(b"x")
    checkpoints.mark_complete(done, 2)
    assert summarize_run(run_dir).checkpoints == ((2, done),)


@pytest.mark.parametrize("ending", ["running", "done"])
def test_a_run_of_100k_steps_is_summarized_without_parsing_it(tmp_path, monkeypatch, ending):
    run_dir = tmp_path / "run"
    lines = [status("loading", t=1.0), status("training", t=2.0)]
    lines += [
        metrics(
            i,
            1.0 / i,
            t=2.0 + i,
            max_steps=100_000,
            learning_rate=2e-4,
            grad_norm=0.5,
            epoch=i / 1000,
            tokens=i * 512,
            tokens_per_second=1234.5,
            peak_memory_mb=2048.0,
            memory_kind="process_rss",
        )
        for i in range(1, 100_001)
    ]
    if ending == "done":
        lines += [status("saving"), status("done", step=100_000)]
    write_run(run_dir, lines, max_steps=100_000)
    runs.write_pid_file(run_dir)
    parsed = []
    real_parse = event_log.parse_event
    monkeypatch.setattr(event_log, "parse_event", lambda line: parsed.append(line) or real_parse(line))
    summary = summarize_run(run_dir)  # its time is measured by benchmarks/hot_paths.py
    assert (summary.state, summary.step, summary.max_steps) == (ending, 100_000, 100_000)
    assert summary.last_loss == 1.0 / 100_000 and summary.started == 1.0
    assert len(parsed) < 10  # read backwards from the end: the cost does not grow with the run's length


@pytest.mark.slow
def test_a_real_run_is_running_while_it_trains_and_done_after(tiny_model_dir, facts_file, tmp_path):
    from testkit.engine_helpers import tiny_config

    from engine.training.recipe import train

    run_dir = tmp_path / "run"
    seen = []

    def echo(e):
        if e["type"] == "metrics" and not seen:
            seen.append((summarize_run(run_dir).state, json.loads((run_dir / runs.PID_NAME).read_text())))

    train(tiny_config(tiny_model_dir, facts_file, training__max_steps=2), run_dir, echo=echo)
    state, pid_file = seen[0]
    assert (
        state == "running" and pid_file["pid"] == os.getpid() and pid_file["hostname"] == socket.gethostname()
    )
    assert not (run_dir / runs.PID_NAME).exists()  # removed when the engine finishes
    summary = summarize_run(run_dir)
    assert (summary.state, summary.step, summary.max_steps) == ("done", 2, 2)
    assert summary.adapter == run_dir / "adapter" and summary.last_loss is not None


def test_events_in_another_json_layout_are_still_read(tmp_path):
    run_dir = write_run(tmp_path / "run", [])
    compact = [
        {"time": 1.0, "type": "status", "state": "training"},
        {"type": "metrics", "step": 3, "loss": 0.5},
        {"type": "status", "state": "stopped"},
    ]
    (run_dir / "events.jsonl").write_text(
        "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in compact)
    )
    summary = summarize_run(run_dir)
    assert (summary.state, summary.step, summary.started) == ("stopped", 3, 1.0)


def test_resume_is_refused_while_the_runs_engine_is_alive(tmp_path):
    from engine.errors import ConfigError
    from engine.training.recipe import check_run_dir

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.toml").write_text("")
    runs.write_pid_file(run_dir)  # this test process plays the engine that is still training
    with pytest.raises(ConfigError, match="another engine process"):
        check_run_dir(run_dir, resume=True)
    runs.remove_pid_file(run_dir)
    check_run_dir(run_dir, resume=True)  # once it has ended, resuming is fine
