"""The Train tab's setup: preset, base model, data, every setting, "will it fit?", and Start.

Settings start from the project's saved ones (project.toml) and are saved back when a run
starts, so the next run starts from the last. The memory estimate is arithmetic on the
model's headers (instant); "Check fit" runs a few real steps in an engine child process.
"""

from __future__ import annotations

import html
import tempfile
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.infra.engine_process import EngineProcess
from app.infra.tasks import TaskRunner, while_alive
from app.train.data_shape import DataShapes, adapter_problem, method_note, method_problem
from app.train.methods import shown as method_uses
from app.train.settings_form import SettingsForm, parse
from engine.cli.protocol import EXIT_DONE, error_message
from engine.config import (
    AUTO_VALIDATION_MIN_ROWS,
    AUTO_VALIDATION_RATIO,
    RunConfig,
    config_to_toml,
    field_errors,
)
from engine.util.files import format_duration, format_size

NO_VALIDATION, HOLD_OUT = "No validation", "Hold out a share of the training rows"
AUTO_VALIDATION = f"Automatic ({AUTO_VALIDATION_RATIO:.0%} held out from {AUTO_VALIDATION_MIN_ROWS} rows up)"
CUSTOM = "Custom"
PREPARING_MODEL = "Preparing the demo model (once, about a minute)… Start is ready after it."


class RunSetup(QWidget):
    startRequested = Signal(object)  # a valid RunConfig
    openLibrary = Signal()

    def __init__(self, tasks: TaskRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from engine.training.presets import list_presets

        self.tasks = tasks
        self.project = None
        self.base: dict = RunConfig().to_dict()
        self.presets = list_presets()
        self.free_gpu_bytes: int | None = None
        self.errors: dict[str, str] = {}
        self._fit: EngineProcess | None = None
        self._fit_file: Path | None = None
        self._models: list = []
        self._preparing_model = ""  # a model folder the app is still making (the demo model)
        self._row_counts: dict[tuple, tuple[int, int] | None] = {}  # data files -> (train, validation) rows
        self._shapes = DataShapes(tasks, lambda: self._on_changed(), self)

        self.preset = QComboBox(self)
        self.preset.addItems([CUSTOM, *(p.name for p in self.presets)])
        self.preset.setToolTip(
            "A preset sets rank, length, steps, batch and learning rate; your model and data stay."
        )
        self.preset_note = QLabel(self)
        self.preset_note.setWordWrap(True)
        self.preset_note.setStyleSheet("color: gray;")
        self.model = QComboBox(self)
        self.model.setMinimumContentsLength(30)
        library = QPushButton("Model library…", self)
        self.data = QComboBox(self)
        # What the method makes of this data: raw text under sft is continued pre-training.
        self.data_note = QLabel(self)
        self.data_note.setWordWrap(True)
        self.data_note.setStyleSheet("color: #2e6da4;")
        self.data_note.hide()
        self.validation = QComboBox(self)
        self.ratio = QLineEdit(self)
        self.ratio.setMaximumWidth(70)
        self.ratio.setToolTip("Share of the training rows held out to measure evaluation loss (0.05 = 5%).")
        self.run_name = QLineEdit(self)
        self.run_name.setToolTip(
            "How the run is listed (you can rename it later); its folder is named by the date."
        )
        self.top_errors = QLabel(self)
        self.top_errors.setStyleSheet("color: #d9534f;")
        self.top_errors.setWordWrap(True)

        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(library)
        validation_row = QHBoxLayout()
        validation_row.addWidget(self.validation, 1)
        validation_row.addWidget(self.ratio)
        top = QFormLayout()
        top.addRow("Preset", self.preset)
        top.addRow("", self.preset_note)
        top.addRow("Base model", model_row)
        top.addRow("Training data", self.data)
        top.addRow("", self.data_note)
        top.addRow("Validation", validation_row)
        top.addRow("Run name", self.run_name)

        self.form = SettingsForm(self)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(self.form)

        fit_box = QGroupBox("Will it fit?", self)
        self.estimate_label = QLabel(fit_box)
        self.estimate_label.setWordWrap(True)
        self.estimate_label.setTextFormat(Qt.TextFormat.RichText)
        self.fit_button = QPushButton("Check fit (a few real steps)", fit_box)
        self.fit_button.setToolTip(
            "Loads the model and trains 3 steps on the longest rows: real peak memory, speed, ETA."
        )
        self.fit_label = QLabel(fit_box)
        self.fit_label.setWordWrap(True)
        self.fit_label.setTextFormat(Qt.TextFormat.RichText)
        fit_layout = QVBoxLayout(fit_box)
        fit_layout.addWidget(self.estimate_label)
        self.warnings_label = QLabel(fit_box)  # settings that will likely overfit, from the engine
        self.warnings_label.setWordWrap(True)
        self.warnings_label.setTextFormat(Qt.TextFormat.RichText)
        self.warnings_label.hide()
        fit_layout.addWidget(self.warnings_label)
        fit_layout.addWidget(self.fit_button)
        fit_layout.addWidget(self.fit_label)
        fit_layout.addStretch(1)
        fit_box.setFixedWidth(330)

        middle = QHBoxLayout()
        middle.addWidget(scroll, 1)
        middle.addWidget(fit_box)
        self.start_button = QPushButton("Start run", self)
        self.start_button.setDefault(True)
        self.cluster_button = QPushButton("Train on a cluster…", self)
        self.cluster_button.setToolTip(
            "Write these settings, the data and torchrun / Slurm scripts into a folder, "
            "to train on several GPUs or machines."
        )
        bottom = QHBoxLayout()
        bottom.addWidget(self.top_errors, 1)
        bottom.addWidget(self.cluster_button)
        bottom.addWidget(self.start_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(middle, 1)
        layout.addLayout(bottom)

        self._estimate_timer = QTimer(self, singleShot=True, interval=250)
        self._estimate_timer.timeout.connect(self._update_estimate)
        self.preset.activated.connect(self._on_preset)
        self.form.changed.connect(self._on_changed)
        self.model.activated.connect(self._on_changed)
        self.data.activated.connect(self._on_changed)
        self.validation.activated.connect(self._on_changed)
        self.ratio.textEdited.connect(self._on_changed)
        self.run_name.textEdited.connect(self._on_changed)
        library.clicked.connect(self.openLibrary)
        self.fit_button.clicked.connect(self.check_fit)
        self.start_button.clicked.connect(self._on_start)
        self.cluster_button.clicked.connect(self.open_cluster_bundle)

    # ---- project ---------------------------------------------------------------------------
    def show_project(self, project) -> None:
        """Load the project's saved settings (only when another project is shown: edits are kept)."""
        same = self.project is not None and project is not None and self.project.path == project.path
        self.project = project
        self.setEnabled(project is not None and not project.problem)
        if project is None or project.problem:
            return
        self._fill_data_lists(project)
        self.form.set_runs(project.runs)
        if same:
            self._estimate_timer.start()  # e.g. the demo model just became ready
            return
        from engine.workspace import load_project_config

        try:
            self.base = load_project_config(project.path).to_dict()
        except Exception as exc:  # a broken project.toml: show it, keep the defaults
            self.base = RunConfig().to_dict()
            self.top_errors.setText(str(exc))
        self.form.set_values(self.base)
        self._select_path(self.data, self.base["data"]["path"])
        self._set_validation(self.base["data"])
        self._set_model_list(self._models)
        self.fit_label.clear()
        self._on_changed()

    def set_models(self, infos: list) -> None:
        """The library's models (scanned off the UI thread by the caller)."""
        self._models = [i for i in infos if i.usable]
        self._set_model_list(self._models)
        self._on_changed()

    def choose_model(self, path: str) -> None:
        """The model picked in the library becomes this run's base model."""
        self.base["model"]["path"] = path
        self.model.setCurrentIndex(-1)
        self._set_model_list(self._models)
        self._select_path(self.model, path)
        self._on_changed()

    def set_model_preparing(self, folder: str, preparing: bool) -> None:
        """The app is making `folder` (the demo model): wait quietly, then check the model again."""
        self._preparing_model = folder if preparing else ""
        self.refresh_model()

    def refresh_model(self) -> None:
        """Check the base model again: its folder may have appeared or changed since the last check."""
        self._set_model_list(self._models)
        self._on_changed()

    def set_device_report(self, report: dict) -> None:
        gpus = report.get("gpus") if report.get("cuda_available") else None
        free = gpus[0].get("free_bytes") if isinstance(gpus, list) and gpus else None
        self.free_gpu_bytes = int(free) if isinstance(free, int | float) else None
        self._estimate_timer.start()

    def _set_model_list(self, infos: list) -> None:
        current = self.model.currentData() or self.base["model"]["path"]
        self.model.clear()
        for info in infos:
            self.model.addItem(f"{info.name}  ({info.source})", str(info.path))
        if current and self.model.findData(str(current)) < 0:
            self.model.addItem(f"{Path(current).name}  (not in the library)", str(current))
        if not current:
            self.model.insertItem(0, "Choose a base model…", "")
        self._select_path(self.model, current)

    def _fill_data_lists(self, project) -> None:
        data, validation = self.data.currentData(), self.validation.currentData()
        self.data.clear()
        self.validation.clear()
        self.validation.addItem(AUTO_VALIDATION, "auto")
        self.validation.addItem(NO_VALIDATION, "")
        self.validation.addItem(HOLD_OUT, "ratio")
        for ds in project.datasets:
            self.data.addItem(f"{ds.name}  ({format_size(ds.size_bytes)})", str(ds.path))
            self.validation.addItem(f"File: {ds.name}", str(ds.path))
        if not project.datasets:
            self.data.addItem("No dataset in this project yet (Data tab)", "")
        self._select_path(self.data, data)
        if validation in ("", "ratio"):  # the choices that are not files ("auto" is the first item)
            self.validation.setCurrentIndex(self.validation.findData(validation))
        self._select_path(self.validation, validation)

    @staticmethod
    def _select_path(combo: QComboBox, path) -> None:
        if not path:
            return
        for i in range(combo.count()):
            data = combo.itemData(i)
            if data and data not in ("ratio", "auto") and Path(data).resolve() == Path(path).resolve():
                combo.setCurrentIndex(i)
                return

    def _set_validation(self, data: dict) -> None:
        ratio = data["validation_ratio"]
        if data["validation_path"]:
            self._select_path(self.validation, data["validation_path"])
        else:
            choice = "auto" if ratio == "auto" else "ratio" if ratio > 0 else ""
            self.validation.setCurrentIndex(max(0, self.validation.findData(choice)))
        shown = ratio if ratio != "auto" and ratio > 0 else 0.1
        self.ratio.setText(f"{shown:g}")

    # ---- the config ------------------------------------------------------------------------
    def raw_config(self) -> dict:
        raw = self.form.values_into(self.base)
        raw["model"]["path"] = self.model.currentData() or ""
        raw["data"]["path"] = self.data.currentData() or ""
        choice = self.validation.currentData()
        raw["data"]["validation_path"] = choice if choice not in ("", "ratio", "auto") else ""
        ratio = parse(self.ratio.text(), float) if choice == "ratio" else 0.0
        raw["data"]["validation_ratio"] = "auto" if choice == "auto" else ratio
        return raw

    def config(self) -> RunConfig | None:
        """The form as a validated config, or None while a setting is invalid."""
        return None if self.errors else RunConfig.from_dict(self.raw_config())

    def _on_changed(self, *_args) -> None:
        raw = self.raw_config()
        errors = field_errors(raw)
        self._check_method(raw, errors)
        self.form.show_errors(errors)
        if not raw["model"]["path"]:
            errors["model.path"] = "Choose a base model (Model library…)."
        if not raw["data"]["path"]:
            errors["data.path"] = "Choose the training data: add a dataset to the project in the Data tab."
        if self._waiting_for_model():
            errors["model.path"] = PREPARING_MODEL
        self._check_run_name(raw, errors)
        self.ratio.setVisible(self.validation.currentData() == "ratio")
        self.ratio.setStyleSheet("border: 1px solid #d9534f;" if "data.validation_ratio" in errors else "")
        self.errors = errors
        shown = [
            m
            for k, m in errors.items()
            if k.split(".")[0] in ("model", "run")
            or k.startswith("data.path")
            or k in ("data.validation_ratio", "training.method")
        ]
        count = len(errors)
        summary = f"{count} setting{'s' if count != 1 else ''} to fix before starting. " if count else ""
        self.top_errors.setText(summary + " ".join(shown))
        self.start_button.setEnabled(not errors and self.project is not None)
        self.cluster_button.setEnabled(not errors and self.project is not None)
        self.fit_button.setEnabled(not errors and self._fit is None)
        matching = (
            [i for i, p in enumerate(self.presets, start=1) if p.matches(RunConfig.from_dict(raw))]
            if not errors
            else []
        )
        self.preset.setCurrentIndex(matching[0] if matching else 0)
        self.preset_note.setText(
            self.presets[matching[0] - 1].description
            if matching
            else "Your own settings. Pick a preset to start from a known recipe."
        )
        self._estimate_timer.start()

    def _check_method(self, raw: dict, errors: dict) -> None:
        """Whether the method can train on the chosen data (the engine would refuse it at the start),
        and raw text under sft named as continued pre-training."""
        method = raw["training"]["method"]
        shape = self._shapes.shape(raw["data"]) if "data.format" not in errors else None
        problem = method_problem(method, shape)
        if problem:  # shown under the method and beside Start
            errors["training.method"] = problem
        start = raw["training"]["init_adapter"]
        if start and isinstance(start, str) and method_uses(method, "training.init_adapter"):
            problem = adapter_problem(start)  # the engine's checks without torch (a header read)
            if problem:
                errors["training.init_adapter"] = problem
        note, tip = method_note(method, shape)
        self.data_note.setText(note)
        self.data_note.setToolTip(tip)
        self.data_note.setVisible(bool(note))

    def _check_run_name(self, raw: dict, errors: dict) -> None:
        """Suggest a name from the preset and what differs; a typed name must be storable."""
        from engine.errors import UserError
        from engine.runs.names import check_run_name
        from engine.training.run_names import default_run_name

        if not errors:
            self.run_name.setPlaceholderText(default_run_name(RunConfig.from_dict(raw), self.presets))
        typed = self.run_name.text()
        try:
            if typed.strip():
                check_run_name(typed)
        except UserError as exc:
            errors["run.name"] = exc.message
        self.run_name.setStyleSheet("border: 1px solid #d9534f;" if "run.name" in errors else "")

    def chosen_run_name(self) -> str:
        """The name typed, else the suggestion (never empty)."""
        return self.run_name.text().strip() or self.run_name.placeholderText() or "Run"

    def run_started(self) -> None:
        """The next run gets a fresh suggestion rather than the last run's typed name."""
        self.run_name.clear()
        self._on_changed()

    def _on_preset(self, index: int) -> None:
        if index == 0:
            return
        raw = self.raw_config()
        try:
            applied = self.presets[index - 1].apply(RunConfig.from_dict(raw)).to_dict()
        except Exception:  # an invalid field elsewhere: apply the preset over the saved settings
            applied = self.presets[index - 1].apply(RunConfig.from_dict(self.base)).to_dict()
        self.form.set_values(applied)
        self._on_changed()

    def _on_start(self) -> None:
        config = self.config()
        if config is not None:
            self.base = config.to_dict()
            self.startRequested.emit(config)

    def open_cluster_bundle(self):
        """The "Train on a cluster" dialog for the settings as they are in the form (returned for tests)."""
        from app.train.cluster_dialog import ClusterBundleDialog

        config = self.config()
        if config is None or self.project is None:
            return None
        dialog = ClusterBundleDialog(config, Path(self.project.path), Path(self.project.path).name, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    # ---- memory ------------------------------------------------------------------------------
    def _waiting_for_model(self) -> bool:
        model, preparing = self.model.currentData() or "", self._preparing_model
        return bool(model and preparing) and Path(model).resolve() == Path(preparing).resolve()

    def _update_estimate(self) -> None:
        if self._waiting_for_model():  # not an error: the app is making it; Start waits
            self.top_errors.setText(PREPARING_MODEL)
            self.estimate_label.setText("<i>The estimate appears when the demo model is ready.</i>")
            return
        config = self.config()
        self._update_warnings(config)
        if config is None or not config.model.path:
            self.estimate_label.setText("<i>The estimate appears when the settings are valid.</i>")
            return
        from engine.errors import UserError
        from engine.models.loading import inspect_model_folder
        from engine.models.memory_estimate import estimate_training_memory, full_shortfall, suggestions

        try:  # the engine's own check (milliseconds, remote-code consent included): Start waits for it
            inspect_model_folder(config.model)
        except UserError as exc:
            self.errors["model.path"] = exc.one_line()
            self.top_errors.setText(f"Base model: {exc.one_line()}")
            self.start_button.setEnabled(False)
            self.fit_button.setEnabled(False)
            self.estimate_label.setText("<i>No estimate without a usable base model.</i>")
            return
        try:
            estimate = estimate_training_memory(config.model.path, config, free_bytes=self.free_gpu_bytes)
        except Exception as exc:  # an unusual model the arithmetic cannot read; the engine may still train it
            self.estimate_label.setText(f"<i>No estimate: {html.escape(str(exc))}</i>")
            return
        rows = "".join(
            f"<tr><td>{html.escape(p.name)}</td><td align='right'>{format_size(p.bytes)}</td></tr>"
            for p in estimate.parts
        )
        free = self.free_gpu_bytes
        if free is None:
            verdict = "No CUDA GPU here: this is what a GPU would need. On the CPU the run uses RAM."
        elif estimate.fits(free):
            verdict = f"<b style='color:#2e8b57'>Fits</b> in the {format_size(free)} free on the GPU."
        else:
            tips = "".join(f"<li>{html.escape(t)}</li>" for t in suggestions(estimate, config, free)[:4])
            # Full fine-tuning that does not fit: say what it needs and that LoRA is the way.
            shortfall = full_shortfall(estimate, config, free)
            heading = (
                f"<b style='color:#d9534f'>{html.escape(shortfall)}</b>"
                if shortfall
                else f"<b style='color:#d9534f'>Will not fit</b> in the {format_size(free)} free."
            )
            verdict = f"{heading} Try:<ul style='margin:0'>{tips}</ul>" if tips else heading
        self.estimate_label.setText(
            f"<b>Estimated GPU memory: {format_size(estimate.total_bytes)}</b>"
            f"<table cellspacing='2'>{rows}</table><p>{verdict}</p>{_auto_notes(config, free)}"
        )

    # ---- warnings -----------------------------------------------------------------------------
    def _update_warnings(self, config: RunConfig | None) -> None:
        """The engine's pre-run warnings (likely overfitting), from the rows counted off the UI thread."""
        if config is None or not config.data.path:
            self.warnings_label.hide()
            return
        key = _rows_key(config)
        if key not in self._row_counts:
            self._row_counts[key] = None  # counting
            self.tasks.run(
                lambda _progress, _cancelled: _count_rows(config),
                while_alive(self, lambda counts: self._rows_counted(key, counts)),
                name="count rows",
            )
        counts = self._row_counts[key]
        if counts is None:
            return  # shown when the count arrives
        from engine.training.run_warnings import run_warnings

        warnings = run_warnings(config, *counts, presets=self.presets)
        items = "".join(f"<li>{html.escape(w.message)}</li>" for w in warnings)
        heading = "<b style='color:#c77c00'>Before you start:</b>"
        self.warnings_label.setText(f"{heading}<ul style='margin:0'>{items}</ul>" if items else "")
        self.warnings_label.setVisible(bool(items))

    def _rows_counted(self, key: tuple, counts: tuple[int, int] | None) -> None:
        self._row_counts[key] = counts  # None: unreadable data, which the run itself reports
        if counts is not None:
            self._update_warnings(self.config())

    def check_fit(self) -> None:
        config = self.config()
        if config is None or self._fit is not None:
            return
        handle = tempfile.NamedTemporaryFile(
            "w", suffix=".toml", prefix="whetstone-fit-", delete=False, encoding="utf-8"
        )
        with handle:
            handle.write(config_to_toml(config))
        self._fit_file = Path(handle.name)
        self._fit = EngineProcess(["fit-check", "--config", handle.name, "--json"], self)
        self._fit.message.connect(self._on_fit_message)
        self._fit.ended.connect(self._on_fit_ended)
        self.fit_button.setEnabled(False)
        self.fit_label.setText("Starting the engine…")
        self._fit.start()

    def _on_fit_message(self, message: dict) -> None:
        if message.get("type") == "progress":
            self.fit_label.setText(html.escape(str(message.get("message", ""))))
        elif message.get("type") == "fit":
            self.fit_label.setText(fit_report_html(message))

    def _on_fit_ended(self, code: int, line: str) -> None:
        if code != EXIT_DONE:
            self.fit_label.setText(
                f"<span style='color:#d9534f'>The fit check failed: {html.escape(error_message(line))}</span>"
            )
        if self._fit_file is not None:
            self._fit_file.unlink(missing_ok=True)
        self._fit, self._fit_file = None, None
        self._on_changed()

    def shutdown(self) -> None:
        if self._fit is not None:
            self._fit.stop_now()


def _rows_key(config: RunConfig) -> tuple:
    """What the row counts depend on: the files (and their last change) and how they are read."""
    d = config.data

    def stamp(path: str) -> tuple:
        try:
            stat = Path(path).stat()
        except OSError:
            return (path, None)
        return (path, stat.st_mtime_ns, stat.st_size)

    columns = tuple(sorted(d.columns.items()))
    validation = stamp(d.validation_path) if d.validation_path else None
    return (stamp(d.path), validation, d.validation_ratio, d.format, columns, d.text_mode)


def _count_rows(config: RunConfig) -> tuple[int, int] | None:
    """(training, validation) rows, or None when the files cannot be read (the run reports why)."""
    from engine.errors import UserError
    from engine.training.run_warnings import count_rows

    try:
        return count_rows(config)
    except (UserError, OSError):
        return None


def fit_report_html(report: dict) -> str:
    kind = "GPU peak" if report.get("memory_kind") == "cuda_allocated" else "Process peak (RAM)"
    lines = [
        f"<b style='color:{'#2e8b57' if report.get('fits') else '#d9534f'}'>"
        f"{html.escape(str(report.get('message', '')))}</b>"
    ]
    if report.get("peak_memory_bytes"):
        lines.append(
            f"{kind}: {format_size(int(report['peak_memory_bytes']))} "
            f"at {report.get('sequence_length')} tokens"
        )
    if report.get("tokens_per_second"):
        lines.append(f"Speed: {report['tokens_per_second']:.0f} tokens/s")
    if report.get("eta_seconds"):
        lines.append(
            f"Whole run ({report.get('total_steps')} steps): about {format_duration(report['eta_seconds'])}"
        )
    tips = "".join(f"<li>{html.escape(t)}</li>" for t in report.get("suggestions") or [])
    return "<br>".join(lines) + (f"<ul style='margin:0'>{tips}</ul>" if tips else "")


def _auto_notes(config: RunConfig, free_gpu: int | None) -> str:
    """What the GPU settings come to on this machine, in the engine's own words (the estimate above
    counts them): gradient checkpointing "auto", and on a GPU the fused kernels and the attention."""
    from engine.models.checkpointing import checkpointing_plan
    from engine.models.fused_kernels import fused_kernels_plan
    from engine.models.memory_estimate import read_shapes
    from engine.models.packing import training_attention

    def reason(why: str) -> str:  # the plan's why without the setting it names: the note names it
        return html.escape(why.split(": ", 1)[1] if why.startswith("training.") and ": " in why else why)

    t, notes = config.training, []
    if t.gradient_checkpointing == "auto" and free_gpu is None:
        notes.append(
            "Gradient checkpointing <i>auto</i>: counted on above; the run decides from the memory "
            "free when it starts (on the CPU, its RAM)."
        )
    elif t.gradient_checkpointing == "auto":
        on, why = checkpointing_plan(config.model.path, config, "cuda", free_gpu)
        state = "on" if on else "off"
        notes.append(f"Gradient checkpointing <i>auto</i> on this GPU: {state} ({reason(why)}).")
    if free_gpu is not None and t.fused_kernels is not False:
        on, why = fused_kernels_plan(t.fused_kernels, "cuda", read_shapes(Path(config.model.path)).model_type)
        notes.append(f"Fused GPU kernels: {'on' if on else 'off'} ({reason(why)}).")
    attention, why = training_attention(t.attention, "cuda")
    if free_gpu is not None and attention != t.attention:
        notes.append(f"Attention: {attention} instead of {t.attention} ({reason(why)}).")
    return "".join(f"<p>{note}</p>" for note in notes)
