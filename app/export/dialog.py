"""Export a run: a merged Hugging Face folder or a GGUF file (plus an Ollama Modelfile),
checked after writing against the run's base + adapter.

The export runs `whetstone-engine export … --progress-json` as a child process: merging
and the check load models with torch, which must never happen on the UI thread.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.infra.engine_process import EngineProcess
from engine.cli.protocol import EXIT_DONE, error_message, stopped_on_request

QUANT_CHOICES = (
    ("q8_0", "q8_0: 8-bit, near-lossless, half the size of f16"),
    ("f16", "f16: 16-bit, exact but large"),
    ("q4_0", "q4_0: 4-bit, smallest, some quality loss"),
)


def best_note(source: Path) -> str:
    """For a run: which step its adapter holds, when the run kept a best checkpoint (best.json)."""
    from engine.runs.best import read_best
    from engine.runs.state import EVENTS_NAME, last_events

    best = read_best(source) if (source / EVENTS_NAME).is_file() else None
    if best is None:
        return ""
    step = (last_events(source / EVENTS_NAME).status or {}).get("adapter_step")
    loss = f"validation loss {best['eval_loss']:.4f}"
    if step == best["step"]:
        return f"Its adapter is the best checkpoint: step {best['step']} ({loss})."
    return f"Its best checkpoint is step {best['step']} ({loss}); the adapter is from step {step}."


def default_output(project: Path, source: Path, kind: str, quant: str) -> Path:
    """exports/<run>-merged or exports/<run>-<quant>.gguf, numbered when taken."""
    run = (
        source.parent.name
        if source.name in ("adapter",) or source.name.startswith("checkpoint-")
        else source.name
    )
    if source.name.startswith("checkpoint-"):
        run = f"{source.parent.parent.name}-{source.name.removeprefix('checkpoint-')}"
    stem = f"{run}-merged" if kind == "merged" else f"{run}-{quant}"
    suffix = "" if kind == "merged" else ".gguf"
    folder = project / "exports"
    candidate = folder / f"{stem}{suffix}"
    n = 2
    while candidate.exists():
        candidate = folder / f"{stem}-{n}{suffix}"
        n += 1
    return candidate


class ExportDialog(QDialog):
    exported = Signal(str)  # the written path, after a passed check (or with the check skipped)

    def __init__(
        self,
        project: Path,
        source: Path,
        quant_types: tuple[str, ...] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Export {source.name}")
        self.resize(760, 520)
        self.project, self.source = Path(project), Path(source)
        self._process: EngineProcess | None = None
        self.result: dict | None = None
        self.error = ""
        self._verdict = ""
        self._warning = ""
        available = quant_types or tuple(q for q, _ in QUANT_CHOICES)

        self.merged_radio = QRadioButton("Merged model folder (Hugging Face safetensors, 16-bit)", self)
        self.gguf_radio = QRadioButton("GGUF file for llama.cpp and Ollama", self)
        self.gguf_radio.setChecked(True)
        self.quant = QComboBox(self)
        for key, label in QUANT_CHOICES:
            if key in available:
                self.quant.addItem(label, key)
        self.ollama = QCheckBox("Write an Ollama Modelfile next to it (chat template and stop tokens)", self)
        self.ollama.setChecked(True)
        self.check = QCheckBox(
            "Check the export: compare its answers and logits with the run's base + adapter", self
        )
        self.check.setChecked(True)
        self.output = QLineEdit(self)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._on_browse)
        out_row = QHBoxLayout()
        out_row.addWidget(self.output, 1)
        out_row.addWidget(browse)

        form = QFormLayout()
        form.addRow("Source", QLabel(html.escape(str(self.source)), self))
        if note := best_note(self.source):
            form.addRow("", QLabel(html.escape(note), self))
        form.addRow("Format", self.gguf_radio)
        form.addRow("", self.merged_radio)
        form.addRow("Quantization", self.quant)
        form.addRow("", self.ollama)
        form.addRow("", self.check)
        form.addRow("Write to", out_row)

        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = QTableWidget(0, 5, self)
        self.table.setHorizontalHeaderLabels(
            ["Prompt", "Same answer", "Top-1 agreement", "Max logit diff", "Writer diff"]
        )
        self.table.horizontalHeaderItem(4).setToolTip(
            "Quantized GGUF: the largest logit difference from the run with its weights rounded exactly "
            "as the file stores them. This decides the check; "
            "the other columns show what the rounding itself costs."
        )
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.start_button = QPushButton("Export", self)
        self.start_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel export", self)
        self.cancel_button.setEnabled(False)
        close = QPushButton("Close", self)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        close.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addWidget(self.progress, 1)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(close)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        for widget in (self.merged_radio, self.gguf_radio):
            widget.toggled.connect(self._on_format_changed)
        self.quant.currentIndexChanged.connect(self._on_format_changed)
        self._on_format_changed()

    # ---- settings ------------------------------------------------------------------------
    def kind(self) -> str:
        return "gguf" if self.gguf_radio.isChecked() else "merged"

    def _on_format_changed(self, *_args) -> None:
        gguf = self.kind() == "gguf"
        self.quant.setEnabled(gguf)
        self.ollama.setEnabled(gguf)
        self.output.setText(
            str(default_output(self.project, self.source, self.kind(), self.quant.currentData()))
        )

    def _on_browse(self) -> None:
        if self.kind() == "gguf":
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

    def command(self) -> list[str]:
        out = self.output.text().strip()
        args = ["export", str(self.source)]
        if self.kind() == "gguf":
            args += ["--gguf", out, "--quant", self.quant.currentData()]
            if self.ollama.isChecked():
                args.append("--ollama")
        else:
            args += ["--merged", out]
        if not self.check.isChecked():
            args.append("--no-check")
        return args + ["--progress-json"]

    # ---- running -------------------------------------------------------------------------
    def start(self) -> EngineProcess | None:
        if not self.output.text().strip():
            self._show_status("Choose where to write the export.", error=True)
            return None
        Path(self.output.text()).parent.mkdir(parents=True, exist_ok=True)
        self.result, self.error, self._verdict, self._warning = None, "", "", ""
        self.table.setRowCount(0)
        self._process = EngineProcess(self.command(), self)
        self._process.message.connect(self._on_message)
        self._process.ended.connect(self._on_ended)
        self._running(True)
        self._show_status("Starting the engine…")
        self._process.start()
        return self._process

    def cancel(self) -> None:
        if self._process is not None:
            self._show_status("Cancelling; nothing half-written is kept…")
            self._process.kill()

    def is_running(self) -> bool:
        return self._process is not None and self._process.is_running()

    def _running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        for widget in (self.merged_radio, self.gguf_radio, self.quant, self.ollama, self.check, self.output):
            widget.setEnabled(
                not running and (widget not in (self.quant, self.ollama) or self.kind() == "gguf")
            )

    def _on_message(self, message: dict) -> None:
        if "progress" in message:
            self.progress.setValue(int(float(message["progress"]) * 100))
            self._show_status(str(message.get("message", "")))
        if "check" in message:
            self._show_check(message["check"])
        if "done" in message:
            self.result = message

    def _on_ended(self, code: int, line: str) -> None:
        self._process = None
        self._running(False)
        if code == EXIT_DONE and self.result:
            self.progress.setValue(100)
            verdict = f" The check {self._verdict}." if self._verdict else " Not checked."
            self._show_status(
                f"Exported to {self.result['done']}.{verdict} {self._warning}".strip(),
                ok=True,
                warn=bool(self._warning),
            )
            self._on_format_changed()  # a fresh name, so "Export" again never collides with this one
            self.exported.emit(str(self.result["done"]))
        elif stopped_on_request(code, line):
            self.progress.setValue(0)
            self._show_status("Export cancelled; nothing was kept.")
        else:
            self.error = error_message(line) or f"The export ended with code {code}."
            self._show_status(self.error, error=True)

    def _show_check(self, report: dict) -> None:
        prompts = report.get("prompts", [])
        self.table.setRowCount(len(prompts))
        for row, p in enumerate(prompts):
            writer = p.get("writer_max_abs_logit_diff")
            cells = (
                p.get("prompt", ""),
                "yes" if p.get("same_text") else "no",
                f"{float(p.get('top1_agreement') or 0):.0%}",
                f"{float(p.get('max_abs_logit_diff') or 0):.4f}",
                "—" if writer is None else f"{float(writer):.1e}",
            )
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if col == 0:
                    item.setToolTip(
                        f"Run: {p.get('reference_text', '')}\nExport: {p.get('exported_text', '')}"
                    )
                self.table.setItem(row, col, item)
        same = sum(1 for p in prompts if p.get("same_text"))
        self._verdict = (
            f"{'passed' if report.get('passed') else 'FAILED'}: {len(prompts)} prompts compared with "
            f"the run's base + adapter, {same} with the same answer"
        )
        changed = int(report.get("rounding_changed_answers") or 0)
        judged = sum(1 for p in prompts if p.get("writer_max_abs_logit_diff") is not None)
        self._warning = (
            f"The file is right, but its rounding changes {changed} of {judged} answers of the run; "
            "a larger type keeps more of them (f16 keeps them all)."
            if changed and report.get("passed")
            else ""
        )
        self._show_status(
            f"Check {self._verdict}. {self._warning}".strip(),
            ok=bool(report.get("passed")),
            error=not report.get("passed"),
            warn=bool(self._warning),
        )

    def _show_status(self, text: str, ok: bool = False, error: bool = False, warn: bool = False) -> None:
        color = "#b9770e" if warn else "#1e8449" if ok else ("#c0392b" if error else "")
        self.status.setText(
            f"<span style='color:{color}'>{html.escape(text)}</span>" if color else html.escape(text)
        )

    def done(self, result: int) -> None:  # closing the dialog cancels a running export
        if self._process is not None:
            self._process.stop_now()
        super().done(result)
