"""A DPO run started from the setup on the tiny model: its preference plots appear and fill."""

from __future__ import annotations

import json

import pytest
from testkit.engine_helpers import tiny_config

from engine.workspace import Workspace, save_project_config

pytest.importorskip("engine.training.preference", reason="the preference trainer (issue 22) is not in yet")


def test_a_dpo_run_starts_from_the_setup_and_its_preference_plots_fill(
    make_window, home, tiny_model_dir, qtbot
):
    project = Workspace(home).create_project("DPO")
    pairs = project / "datasets" / "pairs.jsonl"
    rows = [
        {"prompt": f"What is fact {i}?", "chosen": f"Fact {i} is true.", "rejected": f"Fact {i} is false."}
        for i in range(16)
    ]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    config = tiny_config(tiny_model_dir, pairs, training__max_steps=6, training__batch_size=2)
    save_project_config(project, config)
    window = make_window()
    window.browser.select_project(project)
    window.pages.setCurrentWidget(window.train_page)
    page = window.train_page
    setup = page.setup
    qtbot.waitUntil(lambda: "training.method" in setup.errors, timeout=10000)  # sft cannot train on pairs
    method = setup.form.editors["training.method"]
    method.setCurrentIndex(method.findData("dpo"))
    qtbot.waitUntil(setup.start_button.isEnabled, timeout=10000)
    setup.start_button.click()
    qtbot.waitUntil(lambda: len(window.runs.active()) == 1, timeout=10000)
    plots = page.monitor.plots
    qtbot.waitUntil(lambda: len(plots.curve_data("reward_margin")[0]) >= 2, timeout=180000)
    assert plots.preference_shown()
    assert len(plots.curve_data("reward_chosen")[0]) >= 2 and len(plots.curve_data("reward_accuracy")[0]) >= 2
    qtbot.waitUntil(lambda: page.monitor.state == "done", timeout=180000)
