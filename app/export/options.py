"""The export dialog's settings: what to write (GGUF file, LoRA adapter GGUF, merged folder), the
GGUF type with its size, the options that go with them, and the engine command they make."""

from __future__ import annotations

import html
import os
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QWidget,
)

from app.export.choices import (
    BY_KEY,
    K_QUANTS,
    Size,
    base_stem,
    choice_text,
    default_quant,
    offered,
)

IMATRIX_TIP = (
    "Runs the tuned model over this run's training (or validation) rows once and records which "
    "weights its activations lean on most; the K-quant rounding then keeps those weights closest, like "
    "llama.cpp's imatrix. Takes extra time during the export. Only for the K-quants "
    "(Q4_K_M, Q5_K_M, Q6_K, Q4_K_S) of a GGUF file."
)


def default_output(project: Path, source: Path, kind: str, quant: str) -> Path:
    """exports/<run>-merged, exports/<run>-<quant>.gguf or exports/<run>-lora.gguf, numbered when taken."""
    run = source.name
    if source.name == "adapter":
        run = source.parent.name
    if source.name.startswith("checkpoint-"):
        run = f"{source.parent.parent.name}-{source.name.removeprefix('checkpoint-')}"
    stem = {"merged": f"{run}-merged", "adapter": f"{run}-lora"}.get(kind, f"{run}-{quant}")
    suffix = "" if kind == "merged" else ".gguf"
    folder = project / "exports"
    candidate = folder / f"{stem}{suffix}"
    n = 2
    while candidate.exists():
        candidate = folder / f"{stem}-{n}{suffix}"
        n += 1
    return candidate


class ExportOptions(QWidget):
    changed = Signal()  # any setting changed: the dialog re-reads problem()

    def __init__(
        self,
        project: Path,
        source: Path,
        available: tuple[str, ...],
        note: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.project, self.source = project, source
        self.sizes: dict[str, Size] = {}
        self.base: Path | None = None  # the run's base model folder, once the sizing task found it
        self._locked = False
        self._base_edited = False

        self.gguf_radio = QRadioButton("GGUF file for llama.cpp and Ollama", self)
        self.adapter_radio = QRadioButton(
            "LoRA adapter only (GGUF), for llama.cpp --lora or an Ollama ADAPTER next to a base GGUF", self
        )
        self.merged_radio = QRadioButton("Merged model folder (Hugging Face safetensors, 16-bit)", self)
        self.gguf_radio.setChecked(True)
        self.quant = QComboBox(self)
        self.quant.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        for choice in offered(available):
            self.quant.addItem(choice_text(choice, None), choice.key)
        self.quant.setCurrentIndex(max(0, self.quant.findData(default_quant(available))))
        self.imatrix = QCheckBox("Importance matrix from this run's data", self)
        self.imatrix.setToolTip(IMATRIX_TIP)
        self.ollama = QCheckBox("Write an Ollama Modelfile next to it (chat template and stop tokens)", self)
        self.ollama.setChecked(True)
        self.base_gguf = QLineEdit(self)
        self.base_gguf.setPlaceholderText("the base model as GGUF: an existing file, or where to write it")
        base_browse = QPushButton("Browse…", self)
        base_browse.clicked.connect(self._on_browse_base)
        self.base_hint = QLabel(self)
        _wrapping(self.base_hint)
        self.check = QCheckBox(
            "Check the export: compare its answers and logits with those of the tuned model", self
        )
        self.check.setChecked(True)
        self.output = QLineEdit(self)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._on_browse)
        self._browse_buttons = (browse, base_browse)

        self.form = form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Source", QLabel(html.escape(str(source)), self))
        if note:
            form.addRow("", QLabel(html.escape(note), self))
        form.addRow("Format", self.gguf_radio)
        form.addRow("", self.adapter_radio)
        form.addRow("", self.merged_radio)
        form.addRow("GGUF type", self.quant)
        form.addRow("", self.imatrix)
        form.addRow("", self.ollama)
        self._base_row = form.rowCount()
        form.addRow("Base GGUF", _row(self.base_gguf, base_browse))
        form.addRow("", self.base_hint)
        form.addRow("", self.check)
        form.addRow("Write to", _row(self.output, browse))
        self.output_hint = QLabel(self)
        _wrapping(self.output_hint)
        form.addRow("", self.output_hint)

        for radio in (self.gguf_radio, self.adapter_radio, self.merged_radio):
            radio.toggled.connect(self._on_kind_changed)
        self.quant.currentIndexChanged.connect(self._on_kind_changed)
        self.ollama.toggled.connect(self._update)
        self.base_gguf.textEdited.connect(self._on_base_edited)
        self.output.textChanged.connect(self._update)
        self._on_kind_changed()

    # ---- state -----------------------------------------------------------------------------
    def kind(self) -> str:
        if self.adapter_radio.isChecked():
            return "adapter"
        return "gguf" if self.gguf_radio.isChecked() else "merged"

    def quant_key(self) -> str:
        return self.quant.currentData() or ""

    def wants_base(self) -> bool:
        return self.kind() == "adapter" and self.ollama.isChecked()

    def imatrix_applies(self) -> bool:
        """An importance matrix steers the K-quants' rounding search; other types and outputs have none."""
        return self.kind() == "gguf" and self.quant_key() in K_QUANTS

    def writes_base(self) -> bool:
        """Adapter + Ollama with no base file there yet: the engine writes the base in the chosen type."""
        path = self.base_gguf.text().strip()
        return self.wants_base() and bool(path) and not Path(path).expanduser().exists()

    def problem(self) -> str:
        """What stops the export from starting, in a sentence ('' when nothing)."""
        return self._output_problem() or self._base_problem()

    def _output_problem(self) -> str:
        from engine.export.modelfile import modelfile_path

        out = self.output.text().strip()
        if not out:
            return "Choose where to write the export."
        # The engine refuses this too, but saying it here saves a start and a failure.
        modelfile = modelfile_path(Path(out).expanduser())
        if self.kind() != "merged" and self.ollama.isChecked() and os.path.lexists(modelfile):
            return (
                f"{modelfile} is already there and an export never overwrites it: write to another "
                "folder, or untick the Modelfile."
            )
        return ""

    def _base_problem(self) -> str:
        if not self.wants_base():
            return ""
        out = self.output.text().strip()
        base = self.base_gguf.text().strip()
        if not base:
            return (
                "An Ollama Modelfile for an adapter needs a base GGUF: choose an existing base file to "
                "reuse, or where to write one."
            )
        if not base.lower().endswith(".gguf"):
            return "The base GGUF file's name must end in .gguf."
        if Path(base).expanduser().resolve() == Path(out).expanduser().resolve():
            return "The base GGUF and the adapter GGUF must be two different files."
        return ""

    def set_locked(self, locked: bool) -> None:
        """While an export runs nothing can be changed."""
        self._locked = locked
        self._update()

    def set_sizes(self, base: Path | None, sizes: dict[str, Size]) -> None:
        """The sizing task's answer; no base when it could not find the base model (no sizes then)."""
        self.base, self.sizes = base, sizes
        for row in range(self.quant.count()):
            key = self.quant.itemData(row)
            self.quant.setItemText(row, choice_text(BY_KEY[key], sizes.get(key), sizing=False))
        if base is not None and not self._base_edited:
            self.base_gguf.setText(str(self._default_base()))
        self._update()

    def _default_base(self) -> Path:
        """exports/<base>-<type>.gguf: the next adapter of the same base finds and reuses it."""
        name = base_stem(self.base) if self.base else "base"
        return self.project / "exports" / f"{name}-{self.quant_key()}.gguf"

    # ---- reactions ---------------------------------------------------------------------------
    def refresh_output(self) -> None:
        """A fresh default name, and the files around it looked at again."""
        self.output.setText(str(default_output(self.project, self.source, self.kind(), self.quant_key())))
        self._update()

    def _on_kind_changed(self, *_args) -> None:
        self.refresh_output()
        if self.base is not None and not self._base_edited:
            self.base_gguf.setText(str(self._default_base()))
        self._update()

    def _on_base_edited(self, _text: str) -> None:
        self._base_edited = True
        self._update()

    def _update(self, *_args) -> None:
        kind, free = self.kind(), not self._locked
        base_row = self.wants_base()
        # The type matters for a GGUF file, and for an adapter's base only when that base is written.
        self.quant.setEnabled(free and (kind == "gguf" or self.writes_base()))
        self.imatrix.setEnabled(free and self.imatrix_applies())
        self.ollama.setEnabled(free and kind != "merged")
        self.form.setRowVisible(self._base_row, base_row)
        self.form.setRowVisible(self.base_hint, base_row)
        for widget in (self.gguf_radio, self.adapter_radio, self.merged_radio, self.check, self.output):
            widget.setEnabled(free)
        for widget in (self.base_gguf, *self._browse_buttons):
            widget.setEnabled(free)
        self.base_hint.setText(self._base_hint() if base_row else "")
        output_problem = self._output_problem()
        self.output_hint.setText(_red(output_problem) if output_problem else "")
        self.form.setRowVisible(self.output_hint, bool(output_problem))
        self.changed.emit()

    def _base_hint(self) -> str:
        if problem := self._base_problem():
            return _red(problem)
        if not self.writes_base():
            return "This base file exists: the Modelfile uses it as it is (the GGUF type does not apply)."
        choice = BY_KEY[self.quant_key()]
        size = self.sizes.get(choice.key)
        return (
            f"Not there yet: the base model is written there once as {choice.name}"
            f"{f' ({size.text()})' if size else ''}; later adapters of this base can reuse it."
        )

    def _on_browse(self) -> None:
        if self.kind() != "merged":
            path, _ = QFileDialog.getSaveFileName(
                self, "Write GGUF file", self.output.text(), "GGUF (*.gguf)"
            )
        else:
            path = QFileDialog.getExistingDirectory(
                self, "Parent folder of the merged model", str(Path(self.output.text()).parent)
            )
            path = str(Path(path) / Path(self.output.text()).name) if path else ""
        if path:
            self.output.setText(path)

    def _on_browse_base(self) -> None:
        # Not a save dialog: an existing file is the usual answer, and it is never overwritten.
        dialog = QFileDialog(self, "Base model GGUF (an existing file is reused)", self.base_gguf.text())
        dialog.setNameFilter("GGUF (*.gguf)")
        dialog.setFileMode(QFileDialog.FileMode.AnyFile)
        dialog.setOption(QFileDialog.Option.DontConfirmOverwrite)
        if dialog.exec() and dialog.selectedFiles():
            self.base_gguf.setText(dialog.selectedFiles()[0])
            self._on_base_edited("")

    # ---- the command -------------------------------------------------------------------------
    def command(self) -> list[str]:
        """`whetstone-engine export …` for these settings (without --progress-json)."""
        out, kind = self.output.text().strip(), self.kind()
        args = ["export", str(self.source)]
        if kind == "gguf":
            args += ["--gguf", out, "--quant", self.quant_key()]
            if self.imatrix_applies() and self.imatrix.isChecked():
                args.append("--imatrix")
            if self.ollama.isChecked():
                args.append("--ollama")
        elif kind == "adapter":
            args += ["--adapter-gguf", out]
            if self.wants_base():
                args += ["--ollama", "--base-gguf", self.base_gguf.text().strip()]
                if self.writes_base():
                    args += ["--quant", self.quant_key()]
        else:
            args += ["--merged", out]
        if not self.check.isChecked():
            args.append("--no-check")
        return args


def _wrapping(label: QLabel) -> None:
    # A wrapping label in a form is sized for a narrow width (tall) and then shown on one line, with
    # blank space around it; a minimum width keeps the height it asks for near the height it needs.
    label.setWordWrap(True)
    label.setMinimumWidth(560)


def _red(text: str) -> str:
    return f"<span style='color:#c0392b'>{html.escape(text)}</span>"


def _row(edit: QLineEdit, button: QPushButton) -> QHBoxLayout:
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    row.addWidget(button)
    return row
