"""The thread pool: results, progress, failures and cancellation arrive on the UI thread."""

from __future__ import annotations

import threading
import time

from app.infra.tasks import Cancelled, TaskRunner


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
