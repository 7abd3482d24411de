"""`whetstone`: start the desktop app.

Only Qt and light engine modules are imported before the window paints; torch,
transformers, peft and datasets load later, in worker processes, when a feature needs them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

_T0 = time.perf_counter()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="whetstone", description="Whetstone: QLoRA fine-tuning on your own machine."
    )
    parser.add_argument("--workspace", help="workspace folder for this session (overrides the saved setting)")
    parser.add_argument(
        "--report-startup",
        action="store_true",
        help="print one JSON line with the first-paint time and the longest UI stall, then quit",
    )
    parser.add_argument(
        "--report-after",
        type=float,
        default=5.0,
        help="seconds to measure stalls for (with --report-startup)",
    )
    args = parser.parse_args(argv)

    import importlib.resources
    import os

    if args.workspace:
        os.environ["WHETSTONE_HOME"] = os.path.abspath(args.workspace)
    from PySide6.QtCore import QCoreApplication, QEvent, QObject, QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    import engine  # noqa: F401  (offline environment variables before anything else)
    from app.infra.stall_monitor import StallMonitor
    from app.shell.preferences import AppSettings, resolve_workspace
    from app.widgets.theme import apply_theme, follow_system

    QCoreApplication.setOrganizationName("Whetstone")
    QCoreApplication.setApplicationName("Whetstone")
    app = QApplication(sys.argv[:1])
    app.setWindowIcon(QIcon(str(importlib.resources.files("resources") / "icons/whetstone-256.png")))
    app.setStyle("Fusion")
    settings = AppSettings()
    apply_theme(app, settings.theme)
    follow_system(app, lambda: settings.theme)
    root, why = resolve_workspace(settings)

    from app.shell.main_window import MainWindow

    window = MainWindow(settings, root, why)

    if args.report_startup:
        monitor = StallMonitor()
        report: dict = {}

        class FirstPaint(QObject):
            def eventFilter(self, obj, event):  # noqa: N802 (Qt name)
                if event.type() == QEvent.Type.Paint and "first_paint_s" not in report:
                    report["first_paint_s"] = round(time.perf_counter() - _T0, 3)
                    report["first_paint_wall"] = time.time()  # the benchmark subtracts its spawn time
                    monitor.start()
                    QTimer.singleShot(int(args.report_after * 1000), finish)
                return False

        def finish() -> None:
            report["max_stall_ms"] = round(monitor.max_stall_ms, 1)
            report["projects"] = len(window.workspace_model.projects)
            report["device"] = window.status_bar.device_text()
            print(json.dumps(report), flush=True)
            window.close()

        first_paint = FirstPaint(window)
        window.installEventFilter(first_paint)
    _close_on_signals(window)
    window.show()
    return app.exec()


def _close_on_signals(window) -> None:
    """Ctrl+C or SIGTERM closes the window the normal way; training runs go on (nobody is there to ask)."""
    import signal

    from PySide6.QtCore import QTimer

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_args: window.close_leaving_runs())
    # Python runs signal handlers only between bytecodes; a slow no-op timer gives it the chance.
    timer = QTimer(window, interval=250)
    timer.timeout.connect(lambda: None)
    timer.start()


if __name__ == "__main__":
    sys.exit(main())
