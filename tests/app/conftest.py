"""App tests: real widgets on Qt's offscreen platform, each test in its own workspace and settings."""

from __future__ import annotations

import os

# Offscreen, with a desktop-sized screen (the plugin's default is 800x600, smaller than the window).
_SCREEN = os.path.join(os.path.dirname(__file__), "offscreen-screen.json")
os.environ.setdefault("QT_QPA_PLATFORM", f"offscreen:configfile={_SCREEN}")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402

from app.shell.preferences import AppSettings  # noqa: E402


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh workspace (WHETSTONE_HOME) for one test; nothing of the user's is touched."""
    root = tmp_path / "home"
    monkeypatch.setenv("WHETSTONE_HOME", str(root))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    return root


@pytest.fixture
def settings(tmp_path) -> AppSettings:
    return AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))


class Dialogs:
    """Stands in for the modal dialogs a user would answer."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.answers: list = []
        self.confirm = True

    def warn(self, title: str, message: str, hint: str = "") -> None:
        self.warnings.append(f"{message} {hint}".strip())

    def ask_text(self, title: str, label: str, text: str = ""):
        return self.answers.pop(0) if self.answers else None


@pytest.fixture
def dialogs() -> Dialogs:
    return Dialogs()


@pytest.fixture
def make_window(qtbot, home, settings, dialogs, monkeypatch):
    """Build a main window on the test workspace, wait for its first scan, answer its dialogs."""
    from app.shell.main_window import MainWindow

    monkeypatch.setattr(MainWindow, "warn", lambda self, *a: dialogs.warn(*a))
    monkeypatch.setattr(MainWindow, "ask_text", lambda self, *a: dialogs.ask_text(*a))
    monkeypatch.setattr(MainWindow, "confirm", lambda self, *a: dialogs.confirm)
    windows = []

    def make(wait: bool = True):
        window = MainWindow(settings, home, "test", background=False)
        qtbot.addWidget(window)
        window.show()
        if wait:
            qtbot.waitUntil(
                lambda: window.workspace_model.scans >= 1 and window.tasks.active() == 0, timeout=10000
            )
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.tasks.wait(5000)


@pytest.fixture
def project_with_run(home, short_run) -> Path:
    """A project in the test workspace holding a copy of the short run under runs/run-1."""
    import shutil

    from engine.workspace import Workspace

    project = Workspace(home).create_project("Exporting")
    shutil.copytree(short_run, project / "runs" / "run-1")
    return project
