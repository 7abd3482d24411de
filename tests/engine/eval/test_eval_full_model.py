"""Evaluating a full fine-tuning run: its RUN_DIR/model is a column beside the base (no adapter/)."""

from __future__ import annotations

import json
import shutil

import pytest
from testkit.full_run import make_full_run
from testkit.tiny_model import FACTS, write_jsonl

from engine.config import QuantizationConfig
from engine.errors import ModelError
from engine.eval.evaluation import EvalRequest, Evaluation
from engine.eval.targets import resolve_target

QUESTION, ANSWER = FACTS[0]


@pytest.fixture(scope="module")
def full_run(tiny_model_dir, tmp_path_factory):
    return make_full_run(tiny_model_dir, tmp_path_factory.mktemp("full") / "run")


def test_a_full_run_resolves_to_its_model(full_run):
    for picked in (full_run, full_run / "model"):
        target = resolve_target(picked)
        assert target.kind == "model" and target.adapter == (full_run / "model").resolve()
        assert target.run == full_run.resolve() and target.step is None
        assert target.to_json()["kind"] == "model"


def test_the_full_model_column_answers_the_fact_the_base_does_not(
    small_probes, tiny_model_dir, full_run, tmp_path
):
    facts = write_jsonl(
        tmp_path / "facts.jsonl",
        [
            {"prompt": QUESTION, "expected": ANSWER.rstrip("."), "scorer": "contains"},
            {"prompt": QUESTION, "choices": ["Paris.", ANSWER], "expected": ANSWER},
        ],
    )
    request = EvalRequest(
        model=str(tiny_model_dir),
        adapters=[str(full_run)],
        sets=[str(facts)],
        probes=["forgetting"],
        validation=str(full_run.parent / "run-facts.jsonl"),  # the rows the model was trained on
        max_new_tokens=12,
        device="cpu",
        cache_dir=tmp_path / "cache",
        quantization=QuantizationConfig(load_in_4bit=False),
    )
    base, tuned = Evaluation(request).run()["models"]
    assert tuned["kind"] == "model" and tuned["adapter"] == str((full_run / "model").resolve())
    assert tuned["sets"]["facts"]["score"] == 1.0
    assert base["sets"]["facts"]["items"][0]["passed"] is False
    assert tuned["validation"]["loss"] < base["validation"]["loss"] / 2
    # The forgetting probe measured how far the full model moved from the base (a real KL).
    assert tuned["probes"]["forgetting"]["kl"] > 0 and base["probes"]["forgetting"]["kl"] == 0


def test_a_full_model_of_another_base_is_refused_before_loading(tiny_model_dir, full_run, tmp_path):
    run = shutil.copytree(full_run, tmp_path / "run")
    config = json.loads((run / "model" / "config.json").read_text())
    config["vocab_size"] += 1
    (run / "model" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="vocab_size"):
        Evaluation(EvalRequest(model=str(tiny_model_dir), adapters=[str(run)]))
