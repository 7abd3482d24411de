"""Measures how long the UI thread stops answering: a 10 ms heartbeat and its longest gap.

A frozen window is the complaint we never want, so the figure is measured, not guessed:
any gap between heartbeats beyond the interval is time the event loop was blocked.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Qt, QTimer


class StallMonitor(QObject):
    def __init__(self, interval_ms: int = 10, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interval_ms = interval_ms
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._on_beat)
        self._last: float | None = None
        self.max_stall_ms = 0.0
        self.beats = 0

    def start(self) -> None:
        self.reset()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def reset(self) -> None:
        self._last = time.perf_counter()
        self.max_stall_ms = 0.0
        self.beats = 0

    def _on_beat(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            stall = (now - self._last) * 1000 - self.interval_ms
            self.max_stall_ms = max(self.max_stall_ms, stall)
        self._last = now
        self.beats += 1
