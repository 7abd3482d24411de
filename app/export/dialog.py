"""Export a run: a GGUF file, the LoRA adapter alone as GGUF, or a merged Hugging Face folder
(plus an Ollama Modelfile and a model card), checked after writing against the tuned run (base +
adapter, or a full run's model).
The settings and the command they make are app.export.options; the GGUF types are app.export.choices.

The export runs `whetstone-engine export … --progress-json` as a child process: merging
and the check load models with torch, which must never happen on the UI thread.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.export.choices import base_model, card_path, engine_quant_types, gguf_sizes
from app.export.options import ExportOptions, default_output
from app.infra.engine_process import EngineProcess
from app.infra.tasks import TaskRunner, while_alive
from engine.cli.protocol import EXIT_DONE, error_message, stopped_on_request

__all__ = ["ExportDialog", "best_note", "default_output"]


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
        self.resize(860, 600)
        self.project, self.source = Path(project), Path(source)
        self._process: EngineProcess | None = None
        self.result: dict | None = None
        self.error = ""
        self._verdict = ""
        self._warning = ""
        self._card, self._kind = "", ""
        available = quant_types or engine_quant_types()
        self.options = o = ExportOptions(self.project, self.source, available, best_note(self.source), self)
        # The settings' widgets by the names tests and callers reach for.
        self.gguf_radio, self.adapter_radio, self.merged_radio = o.gguf_radio, o.adapter_radio, o.merged_radio
        self.quant, self.imatrix, self.ollama = o.quant, o.imatrix, o.ollama
        self.base_gguf, self.check, self.output = o.base_gguf, o.check, o.output

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
        layout.addWidget(self.options)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self.options.changed.connect(self._on_options_changed)
        self._on_options_changed()
        self.tasks = TaskRunner(self, threads=1)
        keys = [self.quant.itemData(row) for row in range(self.quant.count())]
        self.sizing = self.tasks.run(
            lambda _progress, _cancelled: self._size_choices(keys),
            while_alive(self, self._on_sized),
            while_alive(self, self._on_sizing_failed),
            name="export sizes",
        )

    # ---- settings ------------------------------------------------------------------------
    def kind(self) -> str:
        return self.options.kind()

    def command(self) -> list[str]:
        return self.options.command() + ["--progress-json"]

    def _on_options_changed(self) -> None:
        self.start_button.setEnabled(self._process is None and not self.options.problem())

    def _size_choices(self, keys: list[str]):  # on a pool thread: no widgets here
        base = base_model(self.source)  # a merge keeps the base's tensor shapes
        return base, gguf_sizes(base, keys)

    def _on_sized(self, result) -> None:
        self.options.set_sizes(*result)

    def _on_sizing_failed(self, message: str, hint: str) -> None:
        self.options.set_sizes(None, {})
        if not self.is_running() and not self.status.text():
            self._show_status(f"The GGUF sizes are unknown: {message} {hint}".strip(), warn=True)

    # ---- running -------------------------------------------------------------------------
    def start(self) -> EngineProcess | None:
        if problem := self.options.problem():
            self._show_status(problem, error=True)
            return None
        Path(self.output.text()).parent.mkdir(parents=True, exist_ok=True)
        self.result, self.error, self._verdict, self._warning = None, "", "", ""
        self._card = ""
        self._kind = self.kind()
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
        self.cancel_button.setEnabled(running)
        self.options.set_locked(running)  # re-enables Export through _on_options_changed
        self.start_button.setEnabled(not running and not self.options.problem())

    def _on_message(self, message: dict) -> None:
        if "progress" in message:
            self.progress.setValue(int(float(message["progress"]) * 100))
            self._show_status(str(message.get("message", "")))
        if "check" in message:
            self._show_check(message["check"])
        if "done" in message:
            self.result = message
            self._card = str(message.get("card") or self._written_card(Path(message["done"])))

    def _written_card(self, done: Path) -> str:
        """The model card next to the export, when the engine wrote one (older engines did not)."""
        card = card_path(self._kind, done)
        return str(card) if card.is_file() else ""

    def _on_ended(self, code: int, line: str) -> None:
        self._process = None
        self._running(False)
        if code == EXIT_DONE and self.result:
            self.progress.setValue(100)
            verdict = f" The check {self._verdict}." if self._verdict else " Not checked."
            card = f" Model card: {self._card}." if self._card else ""
            self._show_status(
                f"Exported to {self.result['done']}.{verdict}{card} {self._warning}".strip(),
                ok=True,
                warn=bool(self._warning),
            )
            self.options.refresh_output()  # a fresh name, so "Export" again never collides with this one
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
            f"{report.get('reference') or 'base + adapter'}, {same} with the same answer"
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
