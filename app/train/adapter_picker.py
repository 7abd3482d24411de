"""training.init_adapter as a choice: a fresh adapter, a finished run of this project, or a folder.

A run folder is stored as it is (the engine takes its adapter/); "Choose a folder…" opens a folder
dialog for an adapter from elsewhere. The value is the path text the config holds ("" = fresh).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from app.widgets.run_labels import run_title
from app.widgets.scroll_safe import ScrollSafeComboBox

FRESH = "A fresh adapter"
CHOOSE = "Choose a folder…"
_CHOOSE = object()  # the item data of "Choose a folder…" (never a value)


class AdapterPicker(ScrollSafeComboBox):
    """A list of where a run's adapter starts; `changed` when the user picks another start."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._runs: list[tuple[str, str]] = []  # (label, run folder) of the project's runs with an adapter
        self._value = ""
        self._fill()
        self.activated.connect(self._on_activated)

    # ---- the list ---------------------------------------------------------------------------
    def set_runs(self, runs) -> None:
        """The project's runs (RunSummary); those with a final adapter can be started from."""
        self._runs = [
            (f"Run: {run_title(run)}", str(run.path))
            for run in sorted(runs, key=lambda r: r.started or 0, reverse=True)
            if run.adapter is not None
        ]
        self._fill()

    def _fill(self) -> None:
        self.blockSignals(True)
        self.clear()
        self.addItem(FRESH, "")
        for label, path in self._runs:
            self.addItem(label, path)
            self.setItemData(self.count() - 1, path, Qt.ItemDataRole.ToolTipRole)
        if self._value and self._index_of(self._value) < 0:
            self.addItem(f"Folder: {self._value}", self._value)
            self.setItemData(self.count() - 1, self._value, Qt.ItemDataRole.ToolTipRole)
        self.addItem(CHOOSE, _CHOOSE)
        self.setCurrentIndex(max(0, self._index_of(self._value)))
        self.blockSignals(False)

    def _index_of(self, value: str) -> int:
        if not value:
            return 0
        for i in range(self.count()):
            data = self.itemData(i)
            if isinstance(data, str) and data and _same(data, value):
                return i
        return -1

    # ---- the value --------------------------------------------------------------------------
    def value(self) -> str:
        return self._value

    def set_value(self, value: str) -> None:
        self._value = str(value or "")
        self._fill()

    def _on_activated(self, index: int) -> None:
        data = self.itemData(index)
        if data is _CHOOSE:
            folder = self._choose_folder()
            if not folder:
                self.setCurrentIndex(max(0, self._index_of(self._value)))  # cancelled: keep the choice
                return
            data = folder
        if data != self._value:
            self.set_value(data)
            self.changed.emit()

    def _choose_folder(self) -> str:
        """A folder from the dialog ("" when cancelled); tests replace this."""
        start = self._value or (self._runs[0][1] if self._runs else str(Path.home()))
        return QFileDialog.getExistingDirectory(
            self, "Start from the adapter in this folder (a run folder or an adapter folder)", start
        )


def _same(a: str, b: str) -> bool:
    try:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    except OSError:
        return a == b
