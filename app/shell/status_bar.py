"""The window's status bar: what is busy (with a spinner), short notes, the compute device and
the offline state."""

from __future__ import annotations

import os

from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QWidget


class StatusBar(QStatusBar):
    def __init__(self, probing: bool, parent: QWidget | None = None) -> None:
        """`probing`: a device probe is on its way (else the device is not probed, in tests)."""
        super().__init__(parent)
        self.busy_bar = QProgressBar(self)
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setMaximumWidth(120)
        self.busy_bar.hide()
        self.busy_label = QLabel(self)
        self.device_label = QLabel(
            "Detecting compute device…" if probing else "Compute device not probed", self
        )
        self.device_label.setToolTip("Help → Diagnostics shows versions, GPUs and the bitsandbytes backend.")
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        self.offline_label = QLabel("● Offline: no network use" if offline else "Network allowed", self)
        self.offline_label.setToolTip(
            "Whetstone never downloads models or data; everything comes from local folders."
        )
        self.addWidget(self.busy_bar)
        self.addWidget(self.busy_label)
        self.addPermanentWidget(self.device_label)
        self.addPermanentWidget(self.offline_label)

    def show_busy(self, text: str, underneath: str = "") -> None:
        """`text`: the work in front ("" when it ended); `underneath`: long work that still runs then."""
        text = text or underneath
        self.busy_bar.setVisible(bool(text))
        self.busy_label.setText(text)

    def set_device(self, text: str) -> None:
        self.device_label.setText(text)

    def device_text(self) -> str:
        """What the status bar says about the compute device (e.g. for the start-up report)."""
        return self.device_label.text()

    def note(self, text: str, msecs: int = 10000) -> None:
        """A short message that goes away by itself."""
        self.showMessage(text, msecs)
