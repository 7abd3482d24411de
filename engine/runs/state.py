"""What a run folder says about its run: state, progress, checkpoints, adapter, liveness.

The engine writes `RUN_DIR/engine.pid` while it runs (see engine.training.recipe). A run whose
last status is loading/training/saving is "running" only while that process is alive;
otherwise it was killed or crashed, and is reported as "interrupted", never as running.

Kept free of torch and numpy: the GUI's project browser summarizes many runs on a timer.
"""

from __future__ import annotations

import json
import mmap
import os
import socket
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.runs.checkpoints import complete_checkpoints
from engine.runs.events import read_events
from engine.util.files import atomic_write_text

# The run folder's file names; engine.training.recipe (heavy to import) takes them from here.
CONFIG_NAME = "config.toml"
EVENTS_NAME = "events.jsonl"
ADAPTER_NAME = "adapter"
PID_NAME = "engine.pid"
OUTPUT_LOG_NAME = "engine-output.log"
STOP_NAME = "STOP"  # its presence asks the engine to checkpoint and stop; "pause" inside makes it a pause  # the engine's stdout/stderr when the GUI launched it
ACTIVE = ("loading", "training", "saving")
FINAL = ("done", "stopped", "failed")


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
    message: str | None  # the last error message, if the run failed


def request_stop(run_dir: str | Path, pause: bool = False) -> None:
    """Ask a running engine to checkpoint and stop; a pause is a stop shown as "paused"."""
    atomic_write_text(Path(run_dir) / STOP_NAME, "pause\n" if pause else "stop\n")


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


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _last_of(mm: mmap.mmap, end: int, kind: str) -> dict[str, Any] | None:
    """The last complete event of one type, found with a reverse byte search, not by parsing.

    EventLog writes `{"type": ...` first on every line, and a JSON string cannot hold a raw
    newline, so a line that starts like this is an event of that type.
    """
    needle = b'\n{"type": "' + kind.encode() + b'"'
    limit = end
    while True:
        pos = mm.rfind(needle, 0, limit)
        start = pos + 1 if pos >= 0 else 0
        if pos < 0 and mm[: len(needle) - 1] != needle[1:]:
            return None
        event = _parse(mm[start : mm.find(b"\n", start, end)])
        if event is not None and event.get("type") == kind:
            return event
        if start == 0:
            return None
        limit = pos


def _scan_events(path: Path) -> dict[str, dict[str, Any] | None]:
    """First, last and last status/metrics/error events; fast on runs of 100k+ steps."""
    found: dict[str, dict[str, Any] | None] = dict.fromkeys(("first", "last", "status", "metrics", "error"))
    try:
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                return found
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                end = mm.rfind(b"\n") + 1  # a torn last line (writer killed mid-write) is ignored
                if end == 0:
                    return found
                found["first"] = _parse(mm[: mm.find(b"\n")])
                found["last"] = _parse(mm[mm.rfind(b"\n", 0, end - 1) + 1 : end - 1])
                for kind in ("status", "metrics"):
                    found[kind] = _last_of(mm, end, kind)
                if (found["status"] or {}).get("state") == "failed":
                    found["error"] = _last_of(mm, end, "error")
    except FileNotFoundError:
        return found
    if found["status"] is None and found["metrics"] is None and found["first"] is not None:
        found.update(_scan_slowly(path))  # not written by our EventLog: parse every line instead
    return found


def _scan_slowly(path: Path) -> dict[str, dict[str, Any] | None]:
    found: dict[str, dict[str, Any] | None] = {}
    for event in read_events(path):
        if event.get("type") in ("status", "metrics", "error"):
            found[event["type"]] = event
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
    events = _scan_events(run_dir / EVENTS_NAME)
    status, metrics = events["status"], events["metrics"]
    last_state = (status or {}).get("state")
    if last_state in FINAL:
        state = "paused" if last_state == "stopped" and (status or {}).get("paused") else last_state
    elif engine_alive(run_dir):
        state = "running"
    else:
        state = "interrupted" if events["first"] is not None else "new"
    # Epoch-based runs have no configured step count; the Trainer logs the one it computed.
    max_steps = _configured_max_steps(run_dir) or _number(metrics, "max_steps") or _number(status, "max_steps")
    step = _number(metrics, "step")
    adapter = run_dir / ADAPTER_NAME
    message = (events["error"] or {}).get("message") if state == "failed" else None
    return RunSummary(
        name=run_dir.name,
        path=run_dir,
        state=state,
        last_loss=_number(metrics, "loss"),
        step=int(step) if step is not None else None,
        max_steps=int(max_steps) if max_steps else None,
        started=_number(events["first"], "time"),
        updated=_number(events["last"], "time"),
        checkpoints=tuple(complete_checkpoints(run_dir)),
        adapter=adapter if (adapter / "adapter_config.json").is_file() else None,
        message=str(message) if message else None,
    )
