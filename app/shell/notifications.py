"""Tell the user a run ended even when the window is in the background.

A tray message where the desktop has a tray, the taskbar alert otherwise, and always the
status bar. `last` keeps the latest one for tests and for the status line.
"""

from __future__ import annotations

from PySide6.QtWidgets import QApplication, QMainWindow, QStyle, QSystemTrayIcon


class Notifier:
    def __init__(self, window: QMainWindow) -> None:
        self.window = window
        self.last: tuple[str, str, bool] | None = None
        self._tray: QSystemTrayIcon | None = None

    def notify(self, title: str, message: str, ok: bool = True) -> None:
        self.last = (title, message, ok)
        self.window.statusBar().showMessage(f"{title}: {message}", 15000)
        if QSystemTrayIcon.isSystemTrayAvailable() and QSystemTrayIcon.supportsMessages():
            if self._tray is None:
                icon = self.window.style().standardIcon(QStyle.StandardPixmap.SP_ComputerIcon)
                self._tray = QSystemTrayIcon(icon, self.window)
                self._tray.setToolTip("Whetstone")
            self._tray.show()
            kind = QSystemTrayIcon.MessageIcon.Information if ok else QSystemTrayIcon.MessageIcon.Critical
            self._tray.showMessage(title, message, kind, 10000)
        QApplication.alert(self.window, 0)  # flashes the taskbar entry until the window is activated
