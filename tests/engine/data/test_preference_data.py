"""Preference data: the shapes TRL uses, problems by line, and rows tokenized like the sft renderer."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from engine.data.check import check_data
from engine.data.preference import check_method_fits_data, render_sides, tokenize_preference
from engine.data.reading import read_data
from engine.data.rendering import IGNORE_INDEX, render_row
from engine.data.shapes import Shape, pair_record, rated_record
from engine.errors import DataError


def write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_pairs_and_rated_replies_are_recognised_in_both_of_trls_forms(tmp_path):
    pairs = write(
        tmp_path / "pairs.jsonl",
        [
            {"prompt": "Q1", "chosen": "good", "rejected": "bad"},
            {
                "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q2"}],
                "chosen": [{"role": "assistant", "content": "yes"}],
                "rejected": [{"role": "assistant", "content": "no"}],
            },
        ],
    )
    read = read_data(pairs)
    assert read.format == "preference"
    assert read.rows[1] == {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q2"}],
        "chosen": "yes",
        "rejected": "no",
    }
    rated = write(tmp_path / "rated.jsonl", [{"prompt": "Q", "completion": "A", "label": False}])
    assert read_data(rated).format == "kto"  # not prompt_completion, whose columns it also has
    table = tmp_path / "rated.csv"
    table.write_text("prompt,completion,label\nQ1,A,true\nQ2,B,FALSE\n")
    assert [row["label"] for row in read_data(table).rows] == [True, False]


def test_bad_preference_rows_are_problems_by_line(tmp_path):
    path = write(
        tmp_path / "bad.jsonl",
        [
            {"prompt": "Q1", "chosen": "same", "rejected": " same"},
            {"prompt": "Q2", "chosen": "", "rejected": "b"},
            {"prompt": [{"role": "assistant", "content": "x"}], "chosen": "a", "rejected": "b"},
            {"prompt": "Q4", "chosen": "a", "rejected": "b"},
        ],
    )
    report = check_data(path)
    found = {p.line: (p.kind, p.message) for p in report.problems}
    assert found[1] == ("same_answers", "chosen and rejected are the same answer")
    assert found[2] == ("empty_assistant", "empty chosen")
    assert found[3][0] == "wrong_type" and "user's turn" in found[3][1]
    assert report.valid_rows == 1
    labels = write(tmp_path / "labels.jsonl", [{"prompt": "Q", "completion": "A", "label": "yes"}])
    problem = check_data(labels, allow_empty=True).problems[0]
    assert (problem.line, problem.message) == (1, "wrong type: label is a string, not true/false")


def test_a_prompt_that_fills_the_max_length_is_a_problem_by_line(tmp_path, tokenizer):
    long = "What is the capital of Zorvania and who painted the blue fox today?"
    path = write(
        tmp_path / "p.jsonl",
        [{"prompt": long, "chosen": "A", "rejected": "B"}, {"prompt": "Q", "chosen": "A", "rejected": "B"}],
    )
    report = check_data(path, tokenizer=tokenizer, max_length=16)
    assert [(p.line, p.message) for p in report.problems if p.severity == "error"] == [
        (1, "the prompt alone fills the max length 16: no answer token would train")
    ]
    assert tokenize_preference(tokenizer, read_data(path).rows[0], 16).problem == (
        "the prompt alone fills data.max_length"
    )


def test_a_pair_is_tokenized_exactly_as_the_sft_renderer_tokenizes_each_side(tokenizer):
    row = {"prompt": "What colour is a zibble?", "chosen": "Bright green.", "rejected": "Dull grey."}
    example = tokenize_preference(tokenizer, row, 64).example
    sides = dict(render_sides(tokenizer, row, 64))
    for side in ("chosen", "rejected"):
        sft = render_row(tokenizer, {"prompt": row["prompt"], "completion": row[side]}, 64)
        trained = [t for t in sft.labels if t != IGNORE_INDEX]
        assert example[f"{side}_ids"] == trained  # the answer and its end-of-turn, nothing after
        assert example["prompt_ids"] + trained == sft.input_ids[: len(example["prompt_ids"]) + len(trained)]
        assert sides[side].input_ids == sft.input_ids and sides[side].labels == sft.labels
    assert tokenizer.decode(example["chosen_ids"]) == "Bright green.<|im_end|>"


def test_the_chats_record_functions_write_trls_formats_or_refuse_another_shape():
    chat = [{"role": "user", "content": "Capital of France?"}]
    assert pair_record(chat, "Paris.", "Whetstone.", Shape("preference", {}, "")) == {
        "prompt": "Capital of France?",
        "chosen": "Paris.",
        "rejected": "Whetstone.",
    }
    longer = [{"role": "system", "content": "Be brief."}, *chat]
    mapped = Shape("preference", {"prompt": "question"}, "")
    assert pair_record(longer, "a", "b", mapped)["question"] == longer
    assert rated_record(chat, "Paris.", False, Shape("kto", {}, "")) == {
        "prompt": "Capital of France?",
        "completion": "Paris.",
        "label": False,
    }
    with pytest.raises(DataError, match="not preference pairs"):
        pair_record(chat, "a", "b", Shape("messages", {}, ""))
    with pytest.raises(DataError, match="user's last message"):
        pair_record([*chat, {"role": "assistant", "content": "x"}], "a", "b", Shape("preference", {}, ""))


@pytest.mark.parametrize(
    "method, shape, words",
    [
        ("dpo", "messages", ("needs preference pairs", "messages")),
        ("orpo", "kto", ("needs preference pairs",)),
        ("kto", "alpaca", ("rated replies",)),
        ("sft", "preference", ("preference pairs", "--method dpo")),
        ("full", "kto", ("rated replies",)),
    ],
)
def test_a_method_refuses_data_it_cannot_train_on(method, shape, words):
    with pytest.raises(DataError) as caught:
        check_method_fits_data(method, shape)
    for word in words:
        assert word in caught.value.one_line()


@pytest.mark.parametrize("method, shape", [("dpo", "preference"), ("kto", "preference"), ("kto", "kto")])
def test_a_method_takes_the_data_it_trains_on(method, shape):
    check_method_fits_data(method, shape)
