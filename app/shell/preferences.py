"""The app's own preferences (window state, theme, workspace folder) in QSettings.

The workspace folder has one source of truth for every process: `WHETSTONE_HOME`. The
app sets it from the saved preference before anything reads it, so engine child
processes and the engine API agree with what the window shows.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

THEMES = ("system", "light", "dark")


class AppSettings:
    def __init__(self, settings: QSettings | None = None) -> None:
        self._s = settings or QSettings()

    def _str(self, key: str, default: str = "") -> str:
        value = self._s.value(key, default)
        return value if isinstance(value, str) else default

    @property
    def workspace(self) -> str:
        return self._str("workspace")

    @workspace.setter
    def workspace(self, path: str) -> None:
        self._s.setValue("workspace", path)

    @property
    def theme(self) -> str:
        value = self._str("theme", "system")
        return value if value in THEMES else "system"

    @theme.setter
    def theme(self, value: str) -> None:
        self._s.setValue("theme", value)

    @property
    def current_project(self) -> str:
        return self._str("current_project")

    @current_project.setter
    def current_project(self, path: str) -> None:
        self._s.setValue("current_project", path)

    @property
    def evaluate_after_runs(self) -> bool:
        """Score every run of this window against the base model when it ends (on unless turned off)."""
        return self._str("evaluate_after_runs", "true") != "false"

    @evaluate_after_runs.setter
    def evaluate_after_runs(self, on: bool) -> None:
        self._s.setValue("evaluate_after_runs", "true" if on else "false")

    def window_state(self) -> tuple[QByteArray | None, QByteArray | None, QByteArray | None, int]:
        def blob(key: str) -> QByteArray | None:
            value = self._s.value(key)
            return value if isinstance(value, QByteArray) else None

        tab = self._s.value("window/tab", 0)
        return blob("window/geometry"), blob("window/state"), blob("window/splitter"), int(tab or 0)

    def save_window_state(
        self, geometry: QByteArray, state: QByteArray, splitter: QByteArray, tab: int
    ) -> None:
        self._s.setValue("window/geometry", geometry)
        self._s.setValue("window/state", state)
        self._s.setValue("window/splitter", splitter)
        self._s.setValue("window/tab", tab)

    def sync(self) -> None:
        self._s.sync()


def resolve_workspace(settings: AppSettings) -> tuple[Path, str]:
    """Pick the workspace folder and export it as WHETSTONE_HOME; returns (folder, why)."""
    from engine.util.files import whetstone_home

    if os.environ.get("WHETSTONE_HOME"):
        return whetstone_home(), "set by the WHETSTONE_HOME environment variable"
    if settings.workspace:
        os.environ["WHETSTONE_HOME"] = settings.workspace
        return whetstone_home(), "chosen in File → Change workspace folder"
    home = whetstone_home()
    os.environ["WHETSTONE_HOME"] = str(home)
    return home, "the default for this user"
