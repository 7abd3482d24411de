"""The Qt binding itself: a long session emits millions of signals, so emit() must not leak or drop
references.

PySide6 6.12.0 returned True from SignalInstance.emit() without a reference: on Python 3.11
(where True is not immortal) the app aborted with "deallocating True or False" after a few
thousand emits, e.g. while streaming a long run's history. pyproject pins a version without it.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication


class _Emitter(QObject):
    plain = Signal()
    flag = Signal(bool)
    payload = Signal(object)


def test_emit_keeps_reference_counts_of_its_result_and_its_arguments(qtbot):
    emitter = _Emitter()
    received = []
    emitter.plain.connect(lambda: received.append(1))
    emitter.payload.connect(received.append)
    emitter.flag.connect(received.append)
    event = {"loss": None, "done": True}
    timer = QTimer()
    app = QApplication.instance()
    app.processEvents()
    before = (sys.getrefcount(True), sys.getrefcount(None), sys.getrefcount(event))
    for _ in range(500):  # 6.12.0 also lost a reference to None in every call returning nothing
        emitter.plain.emit()
        emitter.flag.emit(True)
        emitter.payload.emit(event)
        timer.start(1000)
        timer.stop()
        app.processEvents()
    received.clear()
    after = (sys.getrefcount(True), sys.getrefcount(None), sys.getrefcount(event))
    assert [a - b for a, b in zip(after, before, strict=True)] == [0, 0, 0]
