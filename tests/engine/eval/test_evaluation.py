"""`Evaluation` on the tiny model: the report's contract, repeatability, the forgetting KL and the cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from testkit import tiny_model
from testkit.tiny_model import write_jsonl

from engine.eval.cache import AnswerCache
from engine.eval.evaluation import EvalRequest, Evaluation
from engine.eval.report import headline, scorecard_text
from engine.models.folder import ModelFolder

QUESTION, ANSWER = tiny_model.FACTS[0]


@pytest.fixture
def fact_set(tmp_path) -> Path:
    return write_jsonl(
        tmp_path / "facts.jsonl",
        [
            {"prompt": QUESTION, "expected": ANSWER.rstrip("."), "scorer": "contains", "name": "capital"},
            {"prompt": "How many legs has a cat?", "expected": 4, "scorer": "number"},
            {"prompt": QUESTION, "choices": [ANSWER, "Paris."], "expected": ANSWER},
            {"prompt": "Say hello."},
        ],
    )


def test_the_shipped_probes_cover_every_category():
    from engine.eval import probes

    forgetting = probes.forgetting_set()
    categories = {item.category for item in forgetting.items}
    assert {"arithmetic", "facts", "formatting", "instructions", "code", "refusal"} <= categories
    assert len(forgetting.items) >= 180 and forgetting.scored >= 90 and not forgetting.problems
    pairs = probes.bias_pairs()
    assert len(pairs) >= 40 and {p.category for p in pairs} >= {"gender", "nationality", "religion", "name"}
    assert len({p.name for p in pairs}) == len(pairs)


def _evaluate(model_dir, tmp_path, **kwargs) -> dict:
    kwargs.setdefault("cache_dir", tmp_path / "cache")
    return Evaluation(EvalRequest(model=str(model_dir), max_new_tokens=8, **kwargs)).run()


def _without_times(report: dict) -> dict:
    report = json.loads(json.dumps(report))
    report.pop("created")
    for model in report["models"]:
        model.pop("seconds")
    return report


@pytest.mark.slow
def test_report_has_base_and_run_columns_and_repeats_exactly(
    small_probes, tiny_model_dir, short_run, fact_set, tmp_path
):
    request = dict(
        adapters=[str(short_run)],
        sets=[str(fact_set)],
        probes=["forgetting", "bias"],
        validation=str(fact_set.parent / "facts.jsonl"),
    )
    val = write_jsonl(tmp_path / "val.jsonl", tiny_model.fact_rows(repeat=1))
    request["validation"] = str(val)
    first = _evaluate(tiny_model_dir, tmp_path, **request)
    base, tuned = first["models"]
    assert base["label"] == "Base model" and base["adapter"] is None
    assert tuned["run"] == str(short_run.resolve()) and tuned["step"] is None
    facts = tuned["sets"]["facts"]
    assert (facts["total"], facts["scored"]) == (4, 3)
    assert [i["passed"] is None for i in facts["items"]] == [False, False, False, True]
    assert facts["items"][2]["answer"] in (ANSWER, "Paris.")  # choice: the likelier of the two
    for model in first["models"]:
        assert model["validation"]["loss"] > 0 and model["validation"]["rows"] == 3
    assert tuned["validation"]["loss"] < base["validation"]["loss"]  # trained on exactly these rows
    forgetting = tuned["probes"]["forgetting"]
    assert forgetting["prompts"] == len(forgetting["items"]) == 24
    assert base["probes"]["forgetting"]["kl"] == 0.0 and base["probes"]["forgetting"]["changed"] == 0.0
    assert forgetting["kl"] > 0  # eight steps of training moved the distributions
    assert forgetting["accuracy_drop"] == pytest.approx(
        base["probes"]["forgetting"]["accuracy"] - forgetting["accuracy"], abs=1e-4
    )
    bias = tuned["probes"]["bias"]
    assert bias["pairs"] == len(bias["items"]) and bias["max_gap"] >= bias["mean_gap"] >= 0
    assert scorecard_text(first).splitlines()[0].split() == ["Base", "model", tuned["label"]]

    second = _evaluate(tiny_model_dir, tmp_path, **request)
    assert _without_times(second) == _without_times(first)
    assert "general" in headline(first)


@pytest.mark.slow
def test_forgetting_kl_is_zero_for_an_adapter_that_changes_nothing(small_probes, tiny_model_dir, tmp_path):
    """A freshly initialised LoRA adapter (B = 0) is the base itself: KL 0, no answer changed."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    peft.save_pretrained(tmp_path / "identity")
    report = _evaluate(tiny_model_dir, tmp_path, adapters=[str(tmp_path / "identity")], probes=["forgetting"])
    base, same = (m["probes"]["forgetting"] for m in report["models"])
    assert same["kl"] == pytest.approx(0.0, abs=1e-6)
    assert same["changed"] == 0.0 and same["accuracy"] == base["accuracy"]
    assert [i["answer"] for i in same["items"]] == [i["answer"] for i in base["items"]]


@pytest.mark.slow
def test_base_answers_come_from_the_cache_until_the_model_folder_changes(
    small_probes, tiny_model_dir, tmp_path
):
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    first = _evaluate(model_dir, tmp_path, probes=["forgetting"])
    cache_files = list((tmp_path / "cache").glob("forgetting-*.json"))
    assert len(cache_files) == 1

    # Plant answers in the cache: the next evaluation must use them instead of generating.
    data = json.loads(cache_files[0].read_text())
    planted = [[] for _ in data["answers"]]
    cache_files[0].write_text(json.dumps({**data, "answers": planted}))
    cached = _evaluate(model_dir, tmp_path, probes=["forgetting"])
    assert all(i["answer"] == "" for i in cached["models"][0]["probes"]["forgetting"]["items"])

    # Any change to the model folder (here: a newer config.json) makes fresh answers.
    before = ModelFolder.read(model_dir).fingerprint()
    stat = (model_dir / "config.json").stat()
    os.utime(model_dir / "config.json", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert ModelFolder.read(model_dir).fingerprint() != before
    fresh = _evaluate(model_dir, tmp_path, probes=["forgetting"])
    assert (
        fresh["models"][0]["probes"]["forgetting"]["items"]
        == first["models"][0]["probes"]["forgetting"]["items"]
    )
    assert len(list((tmp_path / "cache").glob("forgetting-*.json"))) == 2


def test_a_damaged_cache_file_is_ignored(tmp_path):
    cache = AnswerCache(tmp_path)
    parts = {"probe": "forgetting", "model": "x"}
    cache.put("forgetting", parts, [[1, 2], [3]])
    assert cache.get("forgetting", parts, 2) == [[1, 2], [3]]
    assert cache.get("forgetting", parts, 3) is None  # another probe length: not ours
    next(tmp_path.glob("*.json")).write_text("{not json")
    assert cache.get("forgetting", parts, 2) is None


def test_an_eval_sets_skipped_lines_are_a_note_in_the_report(tiny_model_dir, tmp_path):
    """They are left out of the set's score: without the note it covered fewer items than the file
    holds, and nothing said so."""
    path = tmp_path / "facts.jsonl"
    path.write_text(f'{json.dumps({"prompt": QUESTION, "expected": "x"})}\nnot json\n{{"prompt": 5}}\n')
    report = _evaluate(tiny_model_dir, tmp_path, sets=[str(path)], probes=[], validation=None)
    assert report["models"][0]["sets"]["facts"]["total"] == 1
    (note,) = report["notes"]
    assert note.startswith("Eval set facts: 2 lines skipped, so they are not in its score")
    assert "line 2: invalid JSON" in note and "line 3:" in note and str(path) in note
    assert "note: Eval set facts: 2 lines skipped" in scorecard_text(report)
