"""How replies are generated: the sampling settings and the system prompt, checked by the engine.

Validation is `engine.chat.loading.GenerationSettings` itself: what the form shows is turned
into settings, and the engine's ConfigError message is shown in red under the form.
Settings the form does not show (min_new_tokens) are kept as they were given.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSignalBlocker, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.chat.loading import GenerationSettings
from engine.errors import ConfigError

ERROR_COLOR = "#d9534f"  # reads on light and dark palettes alike
MAX_SPIN_SEED = 2**31 - 1  # a spin box holds a 32-bit int

TIPS = {
    "temperature": "How adventurous the wording is. 0 always picks the most likely next token "
    "(repeatable, can be dull or loop); higher is more varied but more likely to wander off.",
    "top_p": "Sample only from the most likely tokens that together make up this share of the "
    "probability. Lower is safer and plainer; 1 turns it off.",
    "top_k": "Sample only from the k most likely tokens. Small values are safer but plainer; 0 turns it off.",
    "max_new_tokens": "The longest a reply can get. Higher allows longer answers but a runaway "
    "reply takes longer to finish.",
    "repetition_penalty": "Above 1 discourages repeating words already in the conversation. "
    "Helps against loops; too high makes the wording odd. 1 is off.",
    "seed": "With a fixed seed the same settings and model give the same sampled reply, which "
    "helps comparing. Off: every reply is a fresh draw. Has no effect at temperature 0.",
    "stop_strings": "One per line. The reply ends before the first of these texts appears; the "
    "text itself is not shown. Lines are matched exactly as typed; empty lines are ignored.",
    "system_prompt": "Instructions the model sees before the conversation (its role, tone, "
    "rules). Leave empty to use none.",
}


def _double(low: float, high: float, step: float, decimals: int = 2) -> QDoubleSpinBox:
    return QDoubleSpinBox(decimals=decimals, minimum=low, maximum=high, singleStep=step)


class SamplingPanel(QWidget):
    """The generation settings of a chat; `settings()` is None while what is shown is invalid."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._hidden: dict[str, Any] = {}  # settings given but not shown (min_new_tokens)
        self.temperature = _double(0.0, 2.0, 0.05)
        self.temperature.setSpecialValueText("0 = greedy")
        self.top_p = _double(0.0, 1.0, 0.05)
        self.top_k = QSpinBox(minimum=0, maximum=100_000, specialValueText="0 = off")
        self.max_new_tokens = QSpinBox(minimum=1, maximum=131_072, singleStep=64)
        self.repetition_penalty = _double(0.0, 3.0, 0.05)
        self.seed_fixed = QCheckBox("Fixed seed")
        self.seed = QSpinBox(minimum=0, maximum=MAX_SPIN_SEED)
        self.stop_strings = QPlainTextEdit(objectName="stop_strings")
        self.stop_strings.setTabChangesFocus(True)
        self.stop_strings.setFixedHeight(self.stop_strings.fontMetrics().lineSpacing() * 3 + 12)
        self.stop_strings.setPlaceholderText("one per line")
        self.system = QPlainTextEdit(objectName="system_prompt")
        self.system.setTabChangesFocus(True)
        self.system.setPlaceholderText("e.g. You are a concise assistant.")
        self.error_label = QLabel(objectName="error", wordWrap=True)
        self.error_label.setStyleSheet(f"color: {ERROR_COLOR};")
        self.error_label.hide()
        self.reset_button = QPushButton("Reset", objectName="reset")
        self.reset_button.setToolTip("Put the sampling settings back to their defaults (greedy).")

        form = QFormLayout()
        form.addRow("Temperature", self.temperature)
        form.addRow("Top-p", self.top_p)
        form.addRow("Top-k", self.top_k)
        form.addRow("Max new tokens", self.max_new_tokens)
        form.addRow("Repetition penalty", self.repetition_penalty)
        form.addRow(self.seed_fixed, self.seed)
        form.addRow("Stop strings", self.stop_strings)
        for name in (
            "temperature",
            "top_p",
            "top_k",
            "max_new_tokens",
            "repetition_penalty",
            "seed",
            "stop_strings",
        ):
            widget = getattr(self, name)
            widget.setToolTip(TIPS[name])
            label = form.labelForField(widget)
            if isinstance(label, QLabel):
                label.setToolTip(TIPS[name])
        self.seed_fixed.setToolTip(TIPS["seed"])
        self.system.setToolTip(TIPS["system_prompt"])
        sampling = QGroupBox("Sampling")
        sampling_layout = QVBoxLayout(sampling)
        sampling_layout.addLayout(form)
        sampling_layout.addWidget(self.error_label)
        sampling_layout.addWidget(self.reset_button)
        system_box = QGroupBox("System prompt")
        QVBoxLayout(system_box).addWidget(self.system)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(sampling)
        layout.addWidget(system_box, 1)

        for box in (self.temperature, self.top_p, self.repetition_penalty):
            box.valueChanged.connect(self._on_field_changed)
        for box in (self.top_k, self.max_new_tokens, self.seed):
            box.valueChanged.connect(self._on_field_changed)
        self.seed_fixed.toggled.connect(self._on_seed_toggled)
        self.stop_strings.textChanged.connect(self._on_field_changed)
        self.system.textChanged.connect(self._on_field_changed)
        self.reset_button.clicked.connect(self._on_reset_clicked)
        self.set_settings({})

    # -- what is shown ------------------------------------------------------------------------

    def _shown(self) -> dict[str, Any]:
        lines = self.stop_strings.toPlainText().split("\n")
        return {
            **self._hidden,
            "max_new_tokens": self.max_new_tokens.value(),
            "temperature": self.temperature.value(),
            "top_p": self.top_p.value(),
            "top_k": self.top_k.value(),
            "repetition_penalty": self.repetition_penalty.value(),
            "seed": self.seed.value() if self.seed_fixed.isChecked() else None,
            "stop_strings": [line for line in lines if line.strip()],
        }

    def _validated(self) -> tuple[GenerationSettings | None, str]:
        try:
            return GenerationSettings(**self._shown()), ""
        except ConfigError as error:
            return None, error.one_line()

    def settings(self) -> dict | None:
        """GenerationSettings(...).to_dict() of what is shown; None while it is invalid."""
        settings, _ = self._validated()
        return settings.to_dict() if settings is not None else None

    def errors(self) -> list[str]:
        _, message = self._validated()
        return [message] if message else []

    def set_settings(self, data: dict) -> None:
        """Show stored settings; missing keys take the defaults, unknown ones are ignored."""
        values = {**GenerationSettings().to_dict(), "seed": None, **(data or {})}
        self._hidden = {"min_new_tokens": values.get("min_new_tokens", 0)}
        blockers = [
            QSignalBlocker(w)
            for w in (
                self.temperature,
                self.top_p,
                self.top_k,
                self.max_new_tokens,
                self.repetition_penalty,
                self.seed_fixed,
                self.seed,
                self.stop_strings,
            )
        ]
        self.temperature.setValue(float(values["temperature"]))
        self.top_p.setValue(float(values["top_p"]))
        self.top_k.setValue(int(values["top_k"]))
        self.max_new_tokens.setValue(int(values["max_new_tokens"]))
        self.repetition_penalty.setValue(float(values["repetition_penalty"]))
        seed = values.get("seed")
        self.seed_fixed.setChecked(seed is not None)
        self.seed.setValue(min(int(seed), MAX_SPIN_SEED) if seed is not None else 0)
        self.seed.setEnabled(seed is not None)
        self.stop_strings.setPlainText("\n".join(values.get("stop_strings") or []))
        del blockers
        self._on_field_changed()

    def system_prompt(self) -> str:
        return self.system.toPlainText()

    def set_system_prompt(self, text: str) -> None:
        self.system.setPlainText(text)  # textChanged → changed

    # -- slots --------------------------------------------------------------------------------

    def _on_field_changed(self, *_args) -> None:
        _, message = self._validated()
        self.error_label.setText(message)
        self.error_label.setVisible(bool(message))
        self.changed.emit()

    def _on_seed_toggled(self, on: bool) -> None:
        self.seed.setEnabled(on)
        self._on_field_changed()

    def _on_reset_clicked(self) -> None:
        self.set_settings({})
