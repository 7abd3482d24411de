"""Chat and Evaluate offer a run's best checkpoint (best.json) first, labelled as such."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

from app.chat.page import adapter_choices
from app.eval.run_picker import RunPicker
from engine.runs.best import write_best
from engine.runs.state import summarize_run


def test_the_best_checkpoint_comes_first_and_says_so(qtbot, short_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(short_run, run)
    write_best(run, 4, 1.23)  # checkpoints 4 and 8 are complete; 4 had the lower validation loss
    summary = summarize_run(run)
    assert summary.best_step == 4

    labels = [label for label, _path in adapter_choices(SimpleNamespace(runs=[summary]))]
    assert labels[2:] == ["run: checkpoint step 4 (best: lowest validation loss)", "run: checkpoint step 8"]

    picker = RunPicker()
    qtbot.addWidget(picker)
    picker.show_runs([summary], keep=False)
    item = picker.topLevelItem(0)
    assert [item.child(i).text(0) for i in range(item.childCount())] == [
        "checkpoint · step 4 · best",
        "checkpoint · step 8",
    ]
