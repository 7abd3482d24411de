"""The stall harness itself: it must see a blocked event loop."""

from __future__ import annotations

import time

from PySide6.QtCore import QTimer

from app.infra.stall_monitor import StallMonitor


def test_a_blocked_event_loop_is_measured(qtbot):
    monitor = StallMonitor()
    monitor.start()
    qtbot.wait(50)
    QTimer.singleShot(0, lambda: time.sleep(0.25))  # a slot that freezes the UI thread
    qtbot.waitUntil(lambda: monitor.max_stall_ms > 0 and monitor.beats > 10, timeout=5000)
    qtbot.wait(50)
    monitor.stop()
    assert monitor.max_stall_ms >= 200
