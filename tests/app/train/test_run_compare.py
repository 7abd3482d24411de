"""Compare runs: loss curves of several runs on one plot, and the settings that differ."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomli_w
from PySide6.QtCore import Qt

from app.infra.tasks import TaskRunner
from app.train.compare import CompareRunsDialog
from engine.config import RunConfig


def make_run(root: Path, name: str, steps: int, *, config: dict | None = None, evals: bool = True) -> Path:
    run_dir = root / "project" / "runs" / name
    run_dir.mkdir(parents=True)
    events = [{"type": "status", "time": 0.0, "state": "training", "step": 0, "max_steps": steps}]
    for step in range(1, steps + 1):
        events.append(
            {
                "type": "metrics",
                "time": float(step),
                "step": step,
                "max_steps": steps,
                "epoch": 1.0,
                "loss": 2.0 / step,
                "learning_rate": 1e-4,
                "grad_norm": 1.0,
                "tokens": step,
                "tokens_per_second": 10.0,
                "peak_memory_mb": 100.0,
                "memory_kind": "process_rss",
            }
        )
        if evals and step % 10 == 0:
            events.append(
                {"type": "eval", "time": float(step), "step": step, "epoch": 1.0, "eval_loss": 2.5 / step}
            )
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    if config is not None:
        raw = RunConfig().to_dict()
        for dotted, value in config.items():
            group, key = dotted.split(".")
            raw[group][key] = value
        (run_dir / "config.toml").write_text(tomli_w.dumps(raw), encoding="utf-8")
    return run_dir


@pytest.fixture
def runner():
    tasks = TaskRunner()
    yield tasks
    tasks.wait(5000)


def open_dialog(qtbot, runner, run_dirs) -> CompareRunsDialog:
    dialog = CompareRunsDialog(run_dirs, runner)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.is_loading() and "Loading" in dialog._loading.text()
    qtbot.waitUntil(lambda: not dialog.is_loading(), timeout=4000)
    return dialog


def test_two_runs_show_both_curves_and_only_the_settings_that_differ(qtbot, runner, tmp_path):
    a = make_run(tmp_path, "run-1", 40, config={"training.learning_rate": 2e-4, "lora.rank": 16})
    b = make_run(tmp_path, "run-2", 30, config={"training.learning_rate": 1e-4, "lora.rank": 32}, evals=False)
    dialog = open_dialog(qtbot, runner, [a, b])
    assert dialog.curve_names() == ["run-1", "run-2"]
    assert [key for key, _a, _b in dialog.diff_rows()] == ["lora.rank", "training.learning_rate"]
    assert dialog.diff_rows() == [("lora.rank", 16, 32), ("training.learning_rate", 2e-4, 1e-4)]
    assert dialog._table.rowCount() == 2 and dialog._table.item(1, 1).text() == "0.0002"
    assert len(dialog._loss_curves[0].xData) == 40 and len(dialog._eval_curves[0].xData) == 4
    assert dialog._eval_curves[0].opts["pen"].style() == Qt.PenStyle.DashLine

    dialog._list.item(1).setCheckState(Qt.CheckState.Unchecked)  # hide run-2
    assert dialog.curve_names() == ["run-1"]
    assert not dialog._eval_curves[1].isVisible()
    dialog._combo_b.setCurrentIndex(0)
    assert dialog.diff_rows() == [] and "two different runs" in dialog.diff_message()


def test_identical_settings_say_so(qtbot, runner, tmp_path):
    a = make_run(tmp_path, "run-1", 5, config={"lora.rank": 8})
    b = make_run(tmp_path, "run-2", 5, config={"lora.rank": 8})
    dialog = open_dialog(qtbot, runner, [a, b])
    assert dialog.diff_rows() == [] and dialog.diff_message() == "Identical settings"


def test_a_run_without_config_is_plotted_and_explained(qtbot, runner, tmp_path):
    a = make_run(tmp_path, "run-1", 20, config={})
    b = make_run(tmp_path, "run-2", 20, config=None)  # no config.toml
    dialog = open_dialog(qtbot, runner, [a, b])
    assert dialog.curve_names() == ["run-1", "run-2"]
    assert len(dialog._loss_curves[1].xData) == 20
    assert dialog.diff_rows() == []
    message = dialog.diff_message()
    assert "run-2 has no config.toml" in message and message.startswith("Cannot compare settings")


def test_smoothing_changes_every_curve(qtbot, runner, tmp_path):
    a = make_run(tmp_path, "run-1", 50, config={})
    b = make_run(tmp_path, "run-2", 50, config={})
    dialog = open_dialog(qtbot, runner, [a, b])
    before = dialog._loss_curves[0].yData.copy()
    dialog.set_smoothing(0.0)
    assert dialog._smoothing_control.slider.value() == 0
    assert dialog._loss_curves[0].yData.tolist() == [2.0 / s for s in range(1, 51)]
    assert dialog._loss_curves[0].yData.tolist() != before.tolist()
