"""The "what gets trained" view and the token-length histogram of the dataset editor."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.data.token_histogram import TokenHistogram
from app.data.trained_view import TrainedView
from engine.config import DataConfig, ModelConfig
from engine.data.prepare import prepare_data
from engine.data.rendering import IGNORE_INDEX, render_row
from engine.data.stats import TokenStats, _summarise
from engine.models.loading import load_tokenizer

TWO_TURNS = [
    {"role": "user", "content": "What is the capital of Zorvania?"},
    {"role": "assistant", "content": "Quillhaven.\nIt lies on the river Zor."},
    {"role": "user", "content": "Who painted the blue fox?"},
    {"role": "assistant", "content": "Mira Sol painted it."},
]


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    return load_tokenizer(ModelConfig(path=str(tiny_model_dir)))


@pytest.fixture
def view(qtbot) -> TrainedView:
    widget = TrainedView()
    qtbot.addWidget(widget)
    widget.resize(600, 400)
    widget.show()
    return widget


def chars(ranges) -> set[int]:
    return {i for start, end in ranges for i in range(start, end)}


def trainer_chars(tok, messages, tmp_path, max_length: int) -> set[int]:
    """Characters under the tokens the trainer computes loss on, through the trainer's own path."""
    path = tmp_path / "row.jsonl"
    path.write_text(json.dumps({"messages": messages}) + "\n", encoding="utf-8")
    example = prepare_data(tok, DataConfig(path=str(path), max_length=max_length)).train[0]
    rendered = render_row(tok, messages, max_length)
    assert example["input_ids"] == rendered.input_ids
    offsets = rendered.offsets[: len(example["labels"])]
    return chars(o for o, label in zip(offsets, example["labels"], strict=True) if label != IGNORE_INDEX)


@pytest.mark.parametrize(
    "messages",
    [
        TWO_TURNS,
        # '\r\n' (one block break in a QTextDocument) and a non-BMP emoji (two UTF-16 units)
        # would shift document positions against the row's offsets if not accounted for.
        [
            {"role": "user", "content": "Line one\r\nline two 🦊?"},
            {"role": "assistant", "content": "Yes 🦊🦊\r\nreally."},
            {"role": "user", "content": "And then?"},
            {"role": "assistant", "content": "Nothing more."},
        ],
    ],
    ids=["two-turns", "crlf-emoji"],
)
def test_highlight_equals_the_trainers_label_mask(view, tok, tmp_path, messages):
    expected = trainer_chars(tok, messages, tmp_path, max_length=256)
    rendered = render_row(tok, messages, 256)
    view.show_rendered(rendered, 256)
    ranges = view.trained_char_ranges()
    assert chars(ranges) == expected
    merged = all(b1 < a2 for (_, b1), (a2, _) in zip(ranges, ranges[1:], strict=False))
    assert merged and all(a < b for a, b in ranges)
    assert view.truncation_offset() is None
    text = rendered.text
    for message in messages:
        content = message["content"]
        span = set(range(text.index(content), text.index(content) + len(content)))
        if message["role"] == "assistant":
            assert span <= expected
        else:
            assert not span & expected
    header = view.header.text()
    assert f"{len(rendered.input_ids)} tokens" in header
    assert f"{rendered.trained_tokens} trained" in header and "truncated" not in header


def test_truncated_row_is_cut_where_the_trainer_cuts(view, tok):
    messages = [
        {"role": "user", "content": "Hi?"},
        {"role": "assistant", "content": "The quick brown fox jumps over the lazy dog. " * 20},
    ]
    max_length = 16
    rendered = render_row(tok, messages, max_length)
    assert rendered.truncated_tokens > 0
    view.show_rendered(rendered, max_length)
    cut = rendered.offsets[max_length][0]
    assert view.truncation_offset() == cut
    assert f"truncated: {rendered.truncated_tokens} tokens cut" in view.header.text()
    ranges = view.trained_char_ranges()
    assert ranges and max(end for _, end in ranges) <= cut
    # The marker is inserted into the document, yet offsets still refer to the row's text.
    shown = view.body.document().toPlainText()
    marker = f" ✂ cut here (max length {max_length}) "
    assert shown.index(marker) == cut
    assert shown.replace(marker, "", 1) == rendered.text


def test_show_message_replaces_the_row(view, tok):
    view.show_rendered(render_row(tok, TWO_TURNS, 8), 8)
    assert view.trained_char_ranges() or view.truncation_offset() is not None
    view.show_message("Loading the tokenizer…")
    assert view.message.isVisible() and view.message.text() == "Loading the tokenizer…"
    assert not view.body.isVisible()
    assert view.trained_char_ranges() == [] and view.truncation_offset() is None
    assert view.body.document().isEmpty()


def test_histogram_summary_and_bars(qtbot):
    histogram = TokenHistogram()
    qtbot.addWidget(histogram)
    lengths = np.array([10, 20, 20, 30, 41, 50, 60, 70, 80, 1000])
    histogram.set_lengths(lengths, 64)
    stats = TokenStats()
    _summarise(stats, lengths)  # the dataset statistics' own median and p95
    assert histogram.summary_text() == (
        f"10 rows · median {stats.median:g} · p95 {stats.p95:,} · max 1,000 · "
        "3 rows over the max length (truncated)"
    )
    under, over = histogram._bars.opts["height"], histogram._over.opts["height"]
    assert under.sum() == 7 and over.sum() == 3
    histogram.set_lengths(np.array([5, 6]), 8)
    assert histogram.summary_text().endswith(
        "median 5.5 · p95 6 · max 6 · 0 rows over the max length (truncated)"
    )
    histogram.clear()
    assert histogram.summary_text() == "No token lengths yet"
    assert len(histogram._bars.opts["height"]) == 0 and not histogram._line.isVisible()
