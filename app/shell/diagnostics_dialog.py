"""Help → Diagnostics: versions, CUDA, GPUs and the bitsandbytes backend, ready to paste
into a bug report. The probe runs `whetstone-engine diagnostics --json` as a child process,
so importing torch and touching CUDA never happens on the UI thread."""

from __future__ import annotations

import json

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.infra.engine_process import EngineProcess
from engine.cli.protocol import EXIT_DONE


class DeviceProbe(QObject):
    """Collects the diagnostics report once per `start()`; `ready` carries the dict."""

    ready = Signal(dict)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.report: dict | None = None
        self._process: EngineProcess | None = None
        self._got = False  # the probe's report arrived (else its end is reported as a failure)

    def start(self) -> None:
        if self._process is not None and self._process.is_running():
            return
        self._process = EngineProcess(["diagnostics", "--json"], self)
        self._process.message.connect(self._on_message)
        self._process.ended.connect(self._on_ended)
        self._got = False
        self._process.start()

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop_now()

    def is_running(self) -> bool:
        return self._process is not None and self._process.is_running()

    def device_summary(self) -> str:
        from engine.util.diagnostics import device_summary

        if self.report is None:
            return "Detecting compute device…"
        if "error" in self.report and len(self.report) == 1:
            return "Compute device unknown (see Help → Diagnostics)"
        return device_summary(self.report)

    def _on_message(self, report: dict) -> None:
        self._got = True
        self.report = report
        self.ready.emit(report)

    def _on_ended(self, code: int, line: str) -> None:
        if self._got:
            return
        try:  # the report may come pretty-printed over several lines
            report = json.loads(self._process.output_text()) if code == EXIT_DONE else None
        except ValueError:
            report = None
        if isinstance(report, dict):
            self._on_message(report)
            return
        self.report = {"error": line or f"the diagnostics process ended with code {code}"}
        self.ready.emit(self.report)


class DiagnosticsDialog(QDialog):
    def __init__(self, probe: DeviceProbe, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Diagnostics")
        self.resize(720, 520)
        self._probe = probe
        self.text = QPlainTextEdit(self)
        self.text.setReadOnly(True)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.status = QLabel(self)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.copy_button = QPushButton("Copy for a bug report", self)
        self.refresh_button = QPushButton("Refresh", self)
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.refresh_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        self.copy_button.clicked.connect(self._on_copy)
        self.refresh_button.clicked.connect(self._on_refresh)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        probe.ready.connect(self._on_ready)
        if probe.report is None:
            self._on_refresh()
        else:
            self._on_ready(probe.report)

    def report_text(self) -> str:
        return self.text.toPlainText()

    def _on_ready(self, report: dict) -> None:
        from engine.util.diagnostics import format_report

        if "error" in report and len(report) == 1:
            self.text.setPlainText(f"diagnostics failed: {report['error']}")
        else:
            self.text.setPlainText(format_report(report))
        self.status.setText("")
        self.copy_button.setEnabled(True)

    def _on_refresh(self) -> None:
        self.text.setPlainText("Collecting (this imports torch and checks CUDA; a few seconds)…")
        self.copy_button.setEnabled(False)
        self._probe.start()

    def _on_copy(self) -> None:
        QGuiApplication.clipboard().setText(self.report_text())
        self.status.setText("Copied to the clipboard.")
