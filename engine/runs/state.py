"""What a run folder says about its run: state, progress, checkpoints, adapter, liveness.

The engine writes `RUN_DIR/engine.pid` while it runs (see engine.training.recipe). A run whose
last status is loading/training/saving is "running" only while that process is alive;
otherwise it was killed or crashed, and is reported as "interrupted", never as running
(the judgement itself is engine.runs.verdict's).

Kept free of torch and numpy: the GUI's project browser summarizes many runs on a timer.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.runs.best import read_best
from engine.runs.checkpoints import complete_checkpoints
from engine.runs.events import first_event, iter_backwards
from engine.runs.verdict import FINAL, judge_run
from engine.util.files import atomic_write_text

# The run folder's file names; engine.training.recipe (heavy to import) takes them from here.
CONFIG_NAME = "config.toml"
EVENTS_NAME = "events.jsonl"
ADAPTER_NAME = "adapter"
MODEL_NAME = "model"  # a full fine-tuning run's whole model (engine.runs.output)
PID_NAME = "engine.pid"
OUTPUT_LOG_NAME = "engine-output.log"  # the engine's stdout/stderr when the GUI launched it
STOP_NAME = "STOP"  # its presence asks the engine to checkpoint and stop; "pause" inside makes it a pause


@dataclass(frozen=True)
class RunSummary:
    name: str
    path: Path
    state: str  # running, done, stopped, paused, failed, interrupted or new
    last_loss: float | None
    step: int | None
    max_steps: int | None
    started: float | None  # epoch seconds of the first event
    updated: float | None  # epoch seconds of the last event
    checkpoints: tuple[tuple[int, Path], ...]  # complete ones only
    adapter: Path | None
    message: str | None  # the last error's message and hint, if the run failed
    eval_headline: str = ""  # the latest evaluation in a few words ("facts 100% · general −12 pts")
    best_step: int | None = None  # the complete checkpoint with the lowest validation loss (best.json)
    model: Path | None = None  # a full fine-tuning run's result, RUN_DIR/model (it has no adapter)
    failure: str = ""  # a failed run's error kind (engine.errors.UserError.kind: "oom", "diverged", ...)


def request_stop(run_dir: str | Path, pause: bool = False) -> None:
    """Ask a running engine to checkpoint and stop; a pause is a stop shown as "paused".

    Any entry named STOP is a stop request to the engine (engine.training.stop), so one that is
    not a regular file (a folder, a FIFO) is left as it is. On a full disk the temp file of an
    atomic write has no room: an empty STOP needs no data blocks and still asks for a stop.
    """
    path = Path(run_dir) / STOP_NAME
    if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
        return
    try:
        atomic_write_text(path, "pause\n" if pause else "stop\n")
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))


def write_pid_file(run_dir: str | Path) -> None:
    """Record that this process is the run's engine (called by train())."""
    info = {"pid": os.getpid(), "hostname": socket.gethostname(), "started": time.time()}
    atomic_write_text(Path(run_dir) / PID_NAME, json.dumps(info))


def remove_pid_file(run_dir: str | Path) -> None:
    path = Path(run_dir) / PID_NAME
    if (_read_pid_file(path) or {}).get("pid") == os.getpid():  # never another engine's file
        path.unlink(missing_ok=True)


def _read_pid_file(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def engine_alive(run_dir: str | Path) -> bool:
    """Whether the engine process that wrote RUN_DIR/engine.pid is still running on this machine."""
    info = _read_pid_file(Path(run_dir) / PID_NAME)
    if not info or info.get("hostname") != socket.gethostname():
        return False  # no engine, or one on another machine we cannot see
    pid, started = info.get("pid"), info.get("started")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    return _process_alive(pid, started if isinstance(started, int | float) else None)


def _process_alive(pid: int, started: float | None) -> bool:
    # psutil, not os.kill(pid, 0): on Windows os.kill terminates the process it is asked about.
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if started is not None and proc.create_time() > started + 5:
            return False  # the pid now belongs to a process started after the engine wrote its file
        cmdline = " ".join(proc.cmdline()).lower()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # exists and started in time; we may not read its command line
    return "python" in cmdline or "whetstone" in cmdline


@dataclass
class LastEvents:
    """What a run summary needs from the end of the event log."""

    last: dict[str, Any] | None = None  # the newest event (when the run was last heard from)
    metrics: dict[str, Any] | None = None  # the newest metrics (step, loss, max_steps)
    status: dict[str, Any] | None = None  # the newest status, when it is newer than the newest metrics
    error: dict[str, Any] | None = None  # the newest error, when the run failed


def last_events(path: str | Path, end: int | None = None) -> LastEvents:
    """The last events that tell a run's state, read backwards from the end (or from byte `end`).

    Stops as soon as it knows enough, so a run of 100k+ steps costs a few lines: a status older
    than the newest metrics is not final (a final status ends the log, and a resume begins
    with a new "loading"), so the search stops at the newest metrics unless a status came after it.
    """
    found = LastEvents()
    for event in iter_backwards(path, end):
        kind = event.get("type")
        found.last = found.last or event
        if kind == "status" and found.status is None:
            found.status = event
        elif kind == "error" and found.error is None:
            found.error = event
        elif kind == "metrics":
            found.metrics = event
            break
    if (found.status or {}).get("state") != "failed":
        found.error = None
    return found


def _configured_max_steps(run_dir: Path) -> int | None:
    try:
        raw = tomllib.loads((run_dir / CONFIG_NAME).read_text(encoding="utf-8"))
        steps = raw["training"]["max_steps"]
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError):
        return None
    return steps if isinstance(steps, int) and steps > 0 else None


def _number(event: dict[str, Any] | None, key: str) -> Any:
    value = (event or {}).get(key)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def summarize_run(run_dir: str | Path) -> RunSummary:
    """The state of one run folder. FileNotFoundError if it is not there (any more)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"Run folder {run_dir} does not exist.")
    events = last_events(run_dir / EVENTS_NAME)
    first = first_event(run_dir / EVENTS_NAME)
    status, metrics = events.status, events.metrics
    final = (status or {}).get("state") in FINAL
    alive = not final and engine_alive(run_dir)  # a final status is the truth: no process to look for
    verdict = judge_run(status, events.error, alive=alive, started=first is not None)
    # Epoch-based runs have no configured step count; the Trainer logs the one it computed.
    max_steps = (
        _configured_max_steps(run_dir) or _number(metrics, "max_steps") or _number(status, "max_steps")
    )
    step = _number(metrics, "step")
    adapter = run_dir / ADAPTER_NAME
    return RunSummary(
        name=run_dir.name,
        path=run_dir,
        state=verdict.state,
        last_loss=_number(metrics, "loss"),
        step=int(step) if step is not None else None,
        max_steps=int(max_steps) if max_steps else None,
        started=_number(first, "time"),
        updated=_number(events.last, "time"),
        checkpoints=tuple(complete_checkpoints(run_dir)),
        adapter=adapter if (adapter / "adapter_config.json").is_file() else None,
        message=verdict.text if verdict.state == "failed" else None,  # why it failed and what to do
        eval_headline=read_eval_headline(run_dir),
        best_step=(read_best(run_dir) or {}).get("step"),
        model=run_dir / MODEL_NAME if (run_dir / MODEL_NAME / "config.json").is_file() else None,
        failure=str((events.error or {}).get("kind") or "") if verdict.state == "failed" else "",
    )


EVAL_HEADLINE = "evals/headline.txt"
"""Written by engine.eval with every report of a run: its headline, then the report's file name.
A list of runs reads this small file instead of parsing each report."""


def read_eval_headline(run_dir: Path) -> str:
    try:
        with open(run_dir / EVAL_HEADLINE, encoding="utf-8") as handle:
            return handle.readline(300).strip()
    except (OSError, ValueError):
        return ""
