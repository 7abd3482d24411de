"""The stall harness itself: it must see a blocked event loop, and the background work
helpers must deliver results and failures on the UI thread."""

from __future__ import annotations

import threading
import time

from PySide6.QtCore import QTimer

from app.infra.stall_monitor import StallMonitor
from app.infra.tasks import Cancelled, EngineProcess, TaskRunner


def test_a_blocked_event_loop_is_measured(qtbot):
    monitor = StallMonitor()
    monitor.start()
    qtbot.wait(50)
    QTimer.singleShot(0, lambda: time.sleep(0.25))  # a slot that freezes the UI thread
    qtbot.waitUntil(lambda: monitor.max_stall_ms > 0 and monitor.beats > 10, timeout=5000)
    qtbot.wait(50)
    monitor.stop()
    assert monitor.max_stall_ms >= 200


def test_tasks_report_results_failures_and_cancellation_on_the_ui_thread(qtbot):
    from engine.errors import DataError

    runner = TaskRunner()
    ui_thread = threading.current_thread()
    seen = []

    def ok(progress, cancelled):
        progress(1, 2, "half")
        return 42

    def bad(_p, _c):
        raise DataError("Row 3 is broken.", "Fix row 3.")

    def cancels(_p, cancelled):
        while not cancelled():
            time.sleep(0.01)
        raise Cancelled()

    task = runner.run(ok, on_done=lambda r: seen.append(("done", r, threading.current_thread() is ui_thread)))
    task.progress.connect(lambda d, t, m: seen.append(("progress", d, t, m)))
    runner.run(bad, on_failed=lambda m, h: seen.append(("failed", m, h)))
    slow = runner.run(cancels)
    slow.was_cancelled.connect(lambda: seen.append(("cancelled",)))
    slow.cancel()
    qtbot.waitUntil(lambda: runner.active() == 0, timeout=5000)
    assert ("done", 42, True) in seen
    assert ("failed", "Row 3 is broken.", "Fix row 3.") in seen
    assert ("cancelled",) in seen


def test_an_engine_process_reports_its_error_line(qtbot):
    process = EngineProcess(["models", "add", "/no/such/folder"])
    ended = []
    process.ended.connect(lambda code, line: ended.append((code, line)))
    process.start()
    qtbot.waitUntil(lambda: bool(ended), timeout=60000)
    code, line = ended[0]
    assert code == 2 and line.startswith("error:") and "does not exist" in line
