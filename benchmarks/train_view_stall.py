"""How long the UI thread ever stops answering while a run streams into the Train tab.

Prints figures, asserts nothing. Two measurements in the real main window (offscreen):
  history  re-attach to a run whose events.jsonl already holds N metrics events (default
           100k): time until every point is plotted, and the longest stall meanwhile.
  stream   an engine-like writer appends metrics at R events/s (default 200, far faster
           than a real run logs) for S seconds while the plots redraw: the longest stall.
The writer is a separate process that writes engine.pid like the engine, so the GUI follows
it through the run folder exactly as it follows a real run.
Run: QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/train_view_stall.py [--history 100000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WRITER = r"""
import json, math, os, random, sys, time
from engine.runs.state import write_pid_file
run_dir, start, rate, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
write_pid_file(run_dir)
step, t0 = start, time.time()
with open(os.path.join(run_dir, "events.jsonl"), "a") as out:
    while time.time() - t0 < seconds:
        step += 1
        out.write(json.dumps(metrics(step)) + "\n")
        out.flush()
        time.sleep(1 / rate)
    out.write(json.dumps({"type": "status", "time": time.time(), "state": "done", "step": step}) + "\n")
"""


def metrics(step: int, total: int = 1_000_000) -> dict:
    return {
        "type": "metrics",
        "time": round(time.time(), 3),
        "step": step,
        "max_steps": total,
        "epoch": step / 1000,
        "loss": 2.5 * math.exp(-step / 20000) + 0.3 + random.random() * 0.2,
        "learning_rate": 2e-4 * 0.5 * (1 + math.cos(math.pi * step / total)),
        "grad_norm": 0.5 + random.random(),
        "tokens": step * 2048,
        "tokens_per_second": 3000 + random.random() * 200,
        "peak_memory_mb": 5123.4,
        "memory_kind": "cuda_allocated",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="whetstone-stall-"))
    os.environ["WHETSTONE_HOME"] = str(home)
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.infra.stall_monitor import StallMonitor
    from app.shell.main_window import MainWindow
    from app.shell.preferences import AppSettings
    from engine.workspace import Workspace

    project = Workspace(home).create_project("Stall")
    run_dir = project / "runs" / "run-stall"
    run_dir.mkdir(parents=True)
    (run_dir / "config.toml").write_text("[training]\nmax_steps = 1000000\n")
    with open(run_dir / "events.jsonl", "w") as out:
        out.write(json.dumps({"type": "status", "time": time.time(), "state": "training", "step": 0}) + "\n")
        for step in range(1, args.history + 1):
            out.write(json.dumps(metrics(step)) + "\n")
    size_mb = (run_dir / "events.jsonl").stat().st_size / 2**20
    # A newer, empty run: the Train tab opens on it, so the history below is loaded when asked for.
    newer = project / "runs" / "run-newer"
    newer.mkdir()
    (newer / "events.jsonl").write_text(
        json.dumps({"type": "status", "time": time.time() + 1, "state": "done"}) + "\n"
    )
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from benchmarks.train_view_stall import metrics\n{WRITER}",
            str(run_dir),
            str(args.history),
            str(args.rate),
            str(args.seconds),
        ],
        cwd=REPO,
    )

    app = QApplication.instance() or QApplication([])
    window = MainWindow(
        AppSettings(QSettings(str(home / "s.ini"), QSettings.Format.IniFormat)),
        home,
        "bench",
        background=False,
    )
    window.resize(1400, 900)
    window.show()
    stall = StallMonitor()
    stall.start()
    started = time.perf_counter()

    def pump_until(condition, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            app.processEvents()
            if condition():
                return True
            time.sleep(0.002)
        return False

    pump_until(lambda: window.workspace_model.scans >= 1, 30)
    window.browser.select_project(project)
    window.pages.setCurrentWidget(window.train_page)
    pump_until(lambda: window.runs.is_active(run_dir), 30)
    pump_until(lambda: False, 1.0)  # the window and the Train tab are up and idle
    startup_stall = stall.max_stall_ms
    stall.reset()
    started = time.perf_counter()
    window.train_page.select_run(run_dir)
    plots = window.train_page.monitor.plots
    loaded = pump_until(lambda: len(plots.curve_data("loss")[0]) >= args.history, 120)
    history_s = time.perf_counter() - started
    history_stall = stall.max_stall_ms

    stall.reset()
    pump_until(lambda: writer.poll() is not None, args.seconds + 30)
    pump_until(lambda: not window.runs.is_active(run_dir), 10)
    streamed = len(plots.curve_data("loss")[0]) - args.history
    print(
        "window : first paint, scan and Train tab (a small run shown): "
        f"longest UI stall {startup_stall:.1f} ms"
    )
    print(
        f"history: select the re-attached run, {args.history} metrics events ({size_mb:.1f} MiB) "
        f"plotted in {history_s:.2f} s "
        f"(all loaded: {loaded}); longest UI stall {history_stall:.1f} ms"
    )
    print(
        f"stream : {streamed} events at {args.rate:.0f}/s for {args.seconds:.0f} s while redrawing; "
        f"longest UI stall {stall.max_stall_ms:.1f} ms over {stall.beats} heartbeats"
    )
    window.runs.shutdown()
    window.train_page.shutdown()
    window.close()


if __name__ == "__main__":
    main()
