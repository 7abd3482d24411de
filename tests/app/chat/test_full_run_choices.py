"""A full fine-tuning run (RUN_DIR/model, no adapter) is offered wherever a run's result is."""

from __future__ import annotations

from types import SimpleNamespace

from testkit.full_run import make_full_run

from app.chat.page import adapter_choices
from app.widgets.run_labels import run_result
from engine.runs.state import summarize_run


def test_a_full_run_is_listed_by_its_model_in_the_chat_and_as_the_runs_result(tiny_model_dir, tmp_path):
    run = summarize_run(make_full_run(tiny_model_dir, tmp_path / "full", steps=2))
    assert run.adapter is None and run.model == tmp_path / "full" / "model"
    labels = dict(adapter_choices(SimpleNamespace(runs=[run])))
    assert str(run.model) in labels.values()
    assert any("fine-tuned model (full)" in label for label in labels)
    assert run_result(run) == str(run.model)
