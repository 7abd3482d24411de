"""Take the run setup to a cluster: a folder with these settings, the data and launch scripts.

The folder is written by `whetstone-engine cluster-bundle` in a child process (copying a
base model can take minutes); see engine.training.cluster_bundle for what it holds.
"""

from __future__ import annotations

import html
import shutil
import tempfile
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.infra.engine_process import EngineProcess
from engine.cli.protocol import EXIT_DONE, error_message
from engine.config import RunConfig, config_to_toml
from engine.util.units import format_size


def default_folder(project: Path, name: str) -> Path:
    """exports/cluster-<name>, numbered when taken."""
    candidate = project / "exports" / f"cluster-{name}"
    n = 2
    while candidate.exists():
        candidate = project / "exports" / f"cluster-{name}-{n}"
        n += 1
    return candidate


def folder_size(path: Path) -> int:
    try:
        return sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    except OSError:
        return 0


class ClusterBundleDialog(QDialog):
    def __init__(self, config: RunConfig, project: Path, name: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Train on a cluster")
        self.setMinimumWidth(560)
        self.config = config
        self.name = name
        self._engine: EngineProcess | None = None
        self._config_file: Path | None = None

        intro = QLabel(
            "Writes a folder you carry to a machine with several GPUs, or to a Slurm cluster: these "
            "settings, a copy of the training data, and scripts that start the same engine with PyTorch's "
            "<code>torchrun</code> (one process per GPU, each with its own 4-bit copy of the model).",
            self,
        )
        intro.setWordWrap(True)
        intro.setTextFormat(Qt.TextFormat.RichText)
        self.folder = QLineEdit(str(default_folder(project, name)), self)
        browse = QPushButton("Browse…", self)
        self.nodes = QSpinBox(self, minimum=1, maximum=1024, value=2)
        self.nodes.setToolTip("Machines in the Slurm script (#SBATCH --nodes). Editable there later.")
        self.gpus = QSpinBox(self, minimum=1, maximum=64, value=8)
        self.gpus.setToolTip("GPUs per machine: one training process each.")
        for box in (self.nodes, self.gpus):
            box.setMinimumWidth(90)
        model = Path(config.model.path)
        self.with_model = QCheckBox(
            f"Copy the base model into the folder ({format_size(folder_size(model))})", self
        )
        self.with_model.setToolTip(
            "Leave off when the cluster already has the model: the scripts take MODEL=/path."
        )
        self.batch_note = QLabel(self)
        self.batch_note.setWordWrap(True)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.RichText)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.write_button = QPushButton("Write folder", self)
        self.write_button.setDefault(True)
        self.show_button = QPushButton("Show folder", self)
        self.show_button.setVisible(False)
        close = QPushButton("Close", self)

        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Folder", folder_row)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        form.addRow("Machines (Slurm)", self.nodes)
        form.addRow("GPUs per machine", self.gpus)
        form.addRow("", self.with_model)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.show_button)
        buttons.addWidget(self.write_button)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.batch_note)
        layout.addWidget(self.status)
        layout.addStretch(1)
        layout.addLayout(buttons)

        browse.clicked.connect(self._on_browse)
        self.nodes.valueChanged.connect(self._update_batch_note)
        self.gpus.valueChanged.connect(self._update_batch_note)
        self.write_button.clicked.connect(self.write)
        self.show_button.clicked.connect(self._on_show)
        close.clicked.connect(self.reject)
        self._update_batch_note()

    def _update_batch_note(self) -> None:
        t = self.config.training
        one = t.batch_size * t.gradient_accumulation
        processes = self.nodes.value() * self.gpus.value()
        self.batch_note.setText(
            f"Batch size {t.batch_size} is per GPU: with {processes} GPUs "
            f"({self.nodes.value()} × {self.gpus.value()}) "
            f"each step trains {one * processes} rows instead of {one}. To keep the batch you tuned here, "
            f"lower gradient accumulation or pass --batch-size to the script."
        )

    def _on_browse(self) -> None:
        chosen = QFileDialog.getExistingDirectory(
            self, "Folder for the cluster bundle", str(Path(self.folder.text()).parent)
        )
        if chosen:
            self.folder.setText(str(Path(chosen) / f"cluster-{self.name}"))

    def write(self) -> None:
        if self._engine is not None:
            return
        # The engine names the bundle's run after the config file: <name>.toml in a folder of its own.
        self._config_file = Path(tempfile.mkdtemp(prefix="whetstone-cluster-")) / f"{self.name}.toml"
        self._config_file.write_text(config_to_toml(self.config), encoding="utf-8")
        args = [
            "cluster-bundle",
            str(self._config_file),
            self.folder.text().strip(),
            "--nodes",
            str(self.nodes.value()),
            "--gpus-per-node",
            str(self.gpus.value()),
        ]
        if self.with_model.isChecked():
            args.append("--with-model")
        self._engine = EngineProcess(args, self)
        self._engine.ended.connect(self._on_ended)
        self.write_button.setEnabled(False)
        self.status.setText("Writing…")
        self._engine.start()

    def _on_ended(self, code: int, line: str) -> None:
        output = self._engine.output_text() if self._engine else ""
        self._engine = None
        if self._config_file is not None:
            shutil.rmtree(self._config_file.parent, ignore_errors=True)
            self._config_file = None
        self.write_button.setEnabled(True)
        if code != EXIT_DONE:
            self.status.setText(f"<span style='color:#d9534f'>{html.escape(error_message(line))}</span>")
            return
        self.status.setText("<br>".join(html.escape(ln) for ln in output.splitlines()))
        self.show_button.setVisible(True)
        self.adjustSize()

    def _on_show(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(self.folder.text().strip()))

    def reject(self) -> None:
        if self._engine is not None:
            self._engine.stop_now()
            self._engine = None
        super().reject()
