"""Every run setting as an editor, with the engine's help as tooltip and its validation in place.

The form is generated from engine.config: labels from field names, tooltips from the
field docstrings (`field_help`), lists from `CHOICES`, and errors from `field_errors`, so
the GUI never carries a second copy of what a setting means or allows.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLayout,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from app.train import methods
from app.train.adapter_picker import AdapterPicker
from app.widgets.scroll_safe import ScrollSafeComboBox
from engine.config import _GROUPS, CHOICES, field_errors, field_help

# What the form shows, by group; paths, columns and consent are set elsewhere (model, data pickers).
SHOWN = {
    # First and across the form: the method decides which of the other settings apply.
    "method": (
        "method",
        "preference_beta",
        "dpo_loss",
        "init_adapter",
        "prompt_tuning_tokens",
        "full_layers",
    ),
    "lora": ("rank", "alpha", "dropout", "target_modules", "use_rslora", "use_dora"),
    "training": (
        "max_steps",
        "epochs",
        "batch_size",
        "gradient_accumulation",
        "learning_rate",
        "lr_scheduler",
        "warmup_ratio",
        "weight_decay",
        "max_grad_norm",
        "gradient_checkpointing",
        "activation_offload",
        "attention",
        "group_by_length",
        "padding_free",
        "eval_every",
        "early_stopping_patience",
        "early_stopping_min_delta",
        "final_adapter",
        "neftune_alpha",
        "chunked_loss",
        "cpu_weight_cache",
        "fused_kernels",
        "save_every",
        "keep_checkpoints",
        "seed",
    ),
    "data": ("format", "max_length", "text_mode", "replay_ratio", "seed"),
    "quantization": ("load_in_4bit", "quant_type", "double_quant", "compute_dtype"),
}
BOX_GROUP = {"method": "training"}  # a box whose settings belong to another config group
TITLES = {
    "method": "Method",
    "lora": "LoRA adapter",
    "training": "Training",
    "data": "Data",
    "quantization": "4-bit base model",
}
ERROR_STYLE = "border: 1px solid #d9534f;"
# Settings that are "auto" or a switch: a list whose "true" and "false" are the TOML booleans.
AUTO_SWITCHES = {
    "training.gradient_checkpointing": ("auto", "true", "false"),
    "training.padding_free": ("auto", "true", "false"),
    "training.chunked_loss": ("auto", "true", "false"),
    "training.cpu_weight_cache": ("auto", "true", "false"),
    "training.fused_kernels": ("auto", "true", "false"),
}


LABELS = {
    "use_rslora": "Use rsLoRA",
    "use_dora": "Use DoRA",
    "load_in_4bit": "Load in 4-bit",
    "lr_scheduler": "LR schedule",
    "max_grad_norm": "Max gradient norm",
    "early_stopping_patience": "Early stopping patience",
    "early_stopping_min_delta": "Early stopping min. delta",
    "neftune_alpha": "NEFTune alpha",
    "cpu_weight_cache": "CPU weight cache",
    "activation_offload": "Offload activations to CPU",
    "fused_kernels": "Fused GPU kernels (Liger)",
    "replay_ratio": "Replay (share of base answers)",
    "preference_beta": "Beta (preference strength)",
    "dpo_loss": "DPO loss",
    "init_adapter": "Start from adapter",
    "prompt_tuning_tokens": "Virtual tokens",
    "full_layers": "Layers to train",
}


def _label(name: str) -> str:
    return LABELS.get(name) or name.replace("_", " ").capitalize()


def _field_types() -> dict[str, type]:
    return {
        f"{g}.{f.name}": type(getattr(cls(), f.name))
        for g, cls in _GROUPS.items()
        for f in dataclasses.fields(cls)
    }


def parse(text: str, kind: type) -> Any:
    """Text → the setting's type; what does not parse is passed on as text for the engine to refuse."""
    text = text.strip()
    if kind is list:
        return [part.strip() for part in text.split(",") if part.strip()]
    for convert in (int,) if kind is int else (float,) if kind is float else ():
        try:
            return convert(text)
        except ValueError:
            return text
    return text


def show(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class SettingsForm(QWidget):
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._types = _field_types()
        self.editors: dict[str, QWidget] = {}
        self.error_labels: dict[str, QLabel] = {}
        self.labels: dict[str, QLabel] = {}
        self._cells: dict[str, QWidget] = {}
        self.method = "sft"
        help_texts = self._help = field_help()
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        # The width is ours to pick (one or two columns), not the grid's current minimum.
        self._grid.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        self._boxes: dict[str, QGroupBox] = {}
        self._columns = 0
        for group, names in SHOWN.items():
            box = QGroupBox(TITLES[group], self)
            self._boxes[group] = box
            form = QFormLayout(box)
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            for name in names:
                dotted = f"{BOX_GROUP.get(group, group)}.{name}"
                editor = self._editor(dotted)
                tip = help_texts.get(dotted, "")
                editor.setToolTip(tip)
                error = QLabel(self)
                error.setStyleSheet("color: #d9534f;")
                error.setWordWrap(True)
                error.hide()
                cell = QWidget(self)
                column = QVBoxLayout(cell)
                column.setContentsMargins(0, 0, 0, 0)
                column.setSpacing(1)
                column.addWidget(editor)
                column.addWidget(error)
                label = QLabel(_label(name), self)
                label.setToolTip(tip)
                form.addRow(label, cell)
                self.editors[dotted], self.error_labels[dotted] = editor, error
                self.labels[dotted], self._cells[dotted] = label, cell
        self.labels["training.method"].setStyleSheet("font-weight: bold;")
        self._arrange(2)
        self.show_method(self.method)

    def _arrange(self, columns: int) -> None:
        """Two columns (Training, the long group, on the right) where they fit, else one.

        A narrow Train tab (a wide run list, a small screen) would otherwise squeeze the editors
        behind a horizontal scroll bar."""
        if columns == self._columns:
            return
        self._columns = columns
        for box in self._boxes.values():
            self._grid.removeWidget(box)
        self._grid.addWidget(self._boxes["method"], 0, 0, 1, columns)
        others = [box for group, box in self._boxes.items() if group not in ("training", "method")]
        for row, box in enumerate(others, start=1):
            self._grid.addWidget(box, row, 0)
        if columns == 2:
            self._grid.addWidget(self._boxes["training"], 1, 1, len(others), 1)
        else:
            self._grid.addWidget(self._boxes["training"], len(others) + 1, 0)
        self._grid.setColumnStretch(1, 1 if columns == 2 else 0)
        self._grid.setColumnStretch(0, 1)

    def _column_widths(self) -> tuple[int, int]:
        """(narrowest one-column width, narrowest two-column width), from the boxes' own minimums."""
        training = self._boxes["training"].minimumSizeHint().width()
        others = max(
            box.minimumSizeHint().width() for g, box in self._boxes.items() if g not in ("training", "method")
        )
        method = self._boxes["method"].minimumSizeHint().width()  # spans the columns
        two = max(training + others + self._grid.horizontalSpacing(), method)
        return max(training, others, method), two

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt override): one column is the least it needs
        hint = super().minimumSizeHint()
        return QSize(self._column_widths()[0], hint.height())

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self._arrange(2 if event.size().width() >= self._column_widths()[1] else 1)
        super().resizeEvent(event)

    def _editor(self, dotted: str) -> QWidget:
        kind = self._types[dotted]
        if dotted == "training.method":
            editor = ScrollSafeComboBox(self)
            for method in CHOICES[dotted]:
                editor.addItem(methods.NAMES.get(method, method), method)
                when = methods.WHEN.get(method, "")
                editor.setItemData(editor.count() - 1, when, Qt.ItemDataRole.ToolTipRole)
            editor.currentIndexChanged.connect(lambda _i: self.show_method(editor.currentData()))
            editor.currentIndexChanged.connect(self.changed)
        elif dotted == "training.init_adapter":
            editor = AdapterPicker(self)
            editor.changed.connect(lambda: self.show_method(self.method))
            editor.changed.connect(self.changed)
        elif kind is bool:
            editor = QCheckBox(self)
            editor.toggled.connect(self.changed)
        elif dotted in CHOICES or dotted in AUTO_SWITCHES:
            editor = ScrollSafeComboBox(self)  # scrolling the form never changes a setting
            for value in CHOICES.get(dotted) or AUTO_SWITCHES[dotted]:
                editor.addItem(value, value)
            editor.currentIndexChanged.connect(self.changed)
        else:
            editor = QLineEdit(self)
            editor.textEdited.connect(self.changed)
        return editor

    # ---- values --------------------------------------------------------------------------
    def set_values(self, raw: dict[str, dict[str, Any]]) -> None:
        for dotted, editor in self.editors.items():
            group, name = dotted.split(".", 1)
            value = raw[group][name]
            editor.blockSignals(True)
            if isinstance(editor, QCheckBox):
                editor.setChecked(bool(value))
            elif isinstance(editor, AdapterPicker):
                editor.set_value(str(value))
            elif isinstance(editor, QComboBox):
                text = str(value).lower() if isinstance(value, bool) else str(value)
                editor.setCurrentIndex(max(0, editor.findData(text)))
            else:
                editor.setText(show(value))
            editor.blockSignals(False)
        self.show_method(self.editors["training.method"].currentData())
        self.show_errors(field_errors(self.values_into(raw)))

    def values_into(self, raw: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """A copy of `raw` with the form's values in it."""
        out = {group: dict(values) for group, values in raw.items()}
        for dotted, editor in self.editors.items():
            group, name = dotted.split(".", 1)
            if isinstance(editor, QCheckBox):
                out[group][name] = editor.isChecked()
            elif isinstance(editor, AdapterPicker):
                out[group][name] = editor.value()
            elif isinstance(editor, QComboBox):
                text = editor.currentData()
                switch = dotted in AUTO_SWITCHES and text in ("true", "false")
                out[group][name] = text == "true" if switch else text
            else:
                out[group][name] = parse(editor.text(), self._types[dotted])
        return out

    def set_runs(self, runs) -> None:
        """The project's runs, to start an adapter from (training.init_adapter)."""
        self.editors["training.init_adapter"].set_runs(runs)

    def show_method(self, method: str) -> None:
        """Show the settings `method` uses and hide the rest (their values stay as they are)."""
        self.method = method
        for dotted, cell in self._cells.items():
            visible = methods.shown(dotted, method)
            cell.setVisible(visible)
            self.labels[dotted].setVisible(visible)
        unused = set(methods.UNUSED_GROUPS.get(method, ()))
        start = self.editors.get("training.init_adapter")
        if (
            isinstance(start, AdapterPicker)
            and start.value()
            and methods.shown("training.init_adapter", method)
        ):
            unused.add("lora")  # training on from an adapter: its own rank and targets apply
        for group, box in self._boxes.items():
            box.setVisible(group not in unused)
        tip = methods.method_tooltip(method, self._help.get("training.method", ""))
        self.editors["training.method"].setToolTip(tip)
        self.labels["training.method"].setToolTip(tip)

    def show_errors(self, errors: dict[str, str]) -> None:
        for dotted, editor in self.editors.items():
            message = errors.get(dotted, "")
            label = self.error_labels[dotted]
            label.setText(message)
            label.setVisible(bool(message))
            editor.setStyleSheet(ERROR_STYLE if message else "")
