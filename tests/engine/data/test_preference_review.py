"""The dataset editor's review of preference rows: each side rendered as the preference trainers
render it (engine.data.preference.render_sides), the row's problems named by side."""

from __future__ import annotations

import json

import pytest

from engine.data.preference import render_sides
from engine.data.review import FIXES, KIND_LABELS, review_row, review_store, token_length
from engine.data.row_store import open_store

PAIRS = [
    {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon, I think, or maybe Marseille."},
    {"prompt": "Sky?", "chosen": "Blue.", "rejected": "Blue."},
    {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "chosen": "Hello.",
        "rejected": "Go away.",
    },
    {"prompt": "word " * 80 + "?", "chosen": "Yes.", "rejected": "No."},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from engine.config import ModelConfig
    from engine.models.loading import load_tokenizer

    return load_tokenizer(ModelConfig(path=str(tiny_model_dir)))


def opened(tmp_path, rows):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return open_store(path)


def test_pairs_are_reviewed_side_by_side(tmp_path, tokenizer):
    store, shape = opened(tmp_path, PAIRS)
    assert shape.name == "preference"
    review = review_store(store, shape, tokenizer, max_length=64, batch=2)
    kinds = {i: sorted(x.kind for x in issues) for i, issues in review.issues.items()}
    assert kinds == {1: ["same_answers"], 3: ["no_trainable_tokens"]}
    [long_prompt] = review.issues[3]
    assert long_prompt.message == "chosen and rejected: the prompt alone fills the max length 64"
    for i in (0, 2):  # the longer side's length, as the trainer renders it
        sides = render_sides(tokenizer, shape.normalise(store.record(i)), 4096)
        assert review.lengths[i] == max(len(r.input_ids) for _s, r in sides)
    assert review.lengths[0] == len(render_sides(tokenizer, PAIRS[0], 4096)[1][1].input_ids)
    assert review.lengths[1] == -1  # a row the reader refuses is not rendered

    # One row, right after an edit: the same verdict, and the sides for the view.
    issues, sides = review_row(store.record(3), shape, tokenizer, 64)
    assert [x.message for x in issues] == [long_prompt.message]
    assert [side for side, _r in sides] == ["chosen", "rejected"]
    issues, sides = review_row(store.record(0), shape, tokenizer, 64)
    assert issues == [] and token_length(sides) == review.lengths[0]
    expected = render_sides(tokenizer, PAIRS[0], 64)
    assert [r.input_ids for _s, r in sides] == [r.input_ids for _s, r in expected]


def test_rated_replies_and_the_new_problems_have_labels_and_fixes(tmp_path, tokenizer):
    rows = [
        {"prompt": "Capital of France?", "completion": "Paris.", "label": True},
        {"prompt": "Capital of Spain?", "completion": "Lisbon.", "label": "no"},
    ]
    store, shape = opened(tmp_path, rows)
    review = review_store(store, shape, tokenizer, max_length=64)
    assert {i: [x.kind for x in issues] for i, issues in review.issues.items()} == {1: ["wrong_type"]}
    [(side, rendered)] = render_sides(tokenizer, rows[0], 64)
    assert side == "good" and review.lengths[0] == len(rendered.input_ids)
    assert KIND_LABELS["same_answers"] == "same answers" and KIND_LABELS["empty_prompt"] == "empty prompt"
    assert FIXES["same_answers"][0] == "drop"
