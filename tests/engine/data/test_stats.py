from __future__ import annotations

import json
import math
import threading

import pytest
from testkit.tiny_model import fact_rows, write_jsonl
from transformers import AutoTokenizer

from engine.data import tokenizing
from engine.data.reading import read_data
from engine.data.rendering import render_row
from engine.data.stats import (
    Cancelled,
    TokenStats,
    cached_token_length_stats,
    stats_cache_dir,
    token_length_stats,
)
from engine.data.tokenizing import iter_rendered

MAX_LENGTH = 40


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


@pytest.fixture(scope="module")
def plain_tokenizer(tiny_model_dir):
    plain = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    plain.chat_template = None
    return plain


def mixed_rows() -> list:
    """Chat, multi-turn, prompt/completion and text rows; some truncate, one loses every trained token."""
    rows: list = [row["messages"] for row in fact_rows(3)]
    rows.append(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Colour?"},
            {"role": "assistant", "content": "Green."},
        ]
    )
    rows.append({"prompt": "What colour is a zibble?", "completion": "Bright green."})
    rows.append({"text": "The quick brown fox jumps over the lazy dog."})
    rows.append(
        [
            {"role": "user", "content": "Hello, how are you today? " * 3},
            {"role": "assistant", "content": "The quick brown fox jumps over the lazy dog. " * 4},
        ]
    )
    rows.append(
        [
            {"role": "user", "content": "What is the answer? " * 8},
            {"role": "assistant", "content": "Quillhaven."},
        ]
    )
    rows.append(
        {
            "messages": [
                {"role": "user", "content": "Who painted the blue fox?"},
                {"role": "assistant", "content": "Mira Sol."},
            ]
        }
    )  # a raw JSONL object
    return rows


def expected_from_render_row(tokenizer, rows, max_length):
    rendered = [
        render_row(
            tokenizer, row["messages"] if isinstance(row, dict) and "messages" in row else row, max_length
        )
        for row in rows
    ]
    return rendered, [len(r.input_ids) + r.truncated_tokens for r in rendered]


def test_stats_equal_a_per_row_render_row_computation(tokenizer):
    rows = mixed_rows()
    rendered, lengths = expected_from_render_row(tokenizer, rows, MAX_LENGTH)
    stats = token_length_stats(tokenizer, rows, MAX_LENGTH, batch_size=4)

    assert stats.lengths == lengths
    ordered = sorted(lengths)
    assert (stats.rows, stats.min, stats.max) == (len(rows), ordered[0], ordered[-1])
    mid = len(ordered) // 2
    assert stats.median == (ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2)
    assert stats.p95 == ordered[math.ceil(0.95 * len(ordered)) - 1]
    assert stats.total_tokens == sum(lengths) and stats.mean == pytest.approx(sum(lengths) / len(lengths))
    assert stats.trained_tokens == sum(r.trained_tokens for r in rendered)
    truncated = [r.truncated_tokens for r in rendered if r.truncated_tokens]
    assert len(truncated) >= 2, "the fixture must exercise truncation"
    assert (stats.truncated_rows, stats.truncated_tokens, stats.longest_truncated_by) == (
        len(truncated),
        sum(truncated),
        max(truncated),
    )
    assert stats.no_trainable_rows == sum(1 for r in rendered if r.trained_tokens == 0) == 1
    assert stats.unrenderable_rows == 0
    assert sum(stats.histogram["counts"]) == len(rows)
    assert len(stats.histogram["edges"]) == len(stats.histogram["counts"]) + 1
    assert json.loads(json.dumps(stats.as_dict())) == stats.as_dict()
    assert "lengths" not in stats.as_dict()


def test_batched_rendering_gives_render_row_ids_and_labels_exactly(tokenizer, plain_tokenizer):
    rows = mixed_rows()
    for tok in (tokenizer, plain_tokenizer):
        results = [r for batch in iter_rendered(tok, rows, MAX_LENGTH, batch_size=3) for r in batch]
        assert len(results) == len(rows)
        for row, result in zip(rows, results, strict=True):
            row = row["messages"] if isinstance(row, dict) and "messages" in row else row
            try:
                expected = render_row(tok, row, MAX_LENGTH)
            except ValueError as exc:
                assert isinstance(result, ValueError) and str(result) == str(exc)
                continue
            assert (result.text, result.spans, result.input_ids, result.labels, result.truncated_tokens) == (
                expected.text,
                expected.spans,
                expected.input_ids,
                expected.labels,
                expected.truncated_tokens,
            )


def test_unrenderable_rows_are_counted_not_fatal(plain_tokenizer):
    rows = mixed_rows()
    stats = token_length_stats(plain_tokenizer, rows, MAX_LENGTH, batch_size=5)
    chat_rows = sum(1 for row in rows if isinstance(row, list) or "messages" in row)
    assert stats.unrenderable_rows == chat_rows
    assert stats.rows == len(rows) and len(stats.lengths) == len(rows) - chat_rows


def test_on_row_sees_every_row_once_in_order(plain_tokenizer):
    rows = mixed_rows()
    seen = []
    token_length_stats(
        plain_tokenizer,
        rows,
        MAX_LENGTH,
        batch_size=4,
        on_row=lambda index, rendered, error: seen.append((index, rendered, error)),
    )
    assert [index for index, _, _ in seen] == list(range(len(rows)))
    for (_, rendered, error), row in zip(seen, rows, strict=True):
        if isinstance(row, list) or "messages" in row:
            assert rendered is None and "no chat template" in error
        else:
            assert (
                error is None and rendered.input_ids == render_row(plain_tokenizer, row, MAX_LENGTH).input_ids
            )


def test_progress_counts_up_to_the_total(tokenizer):
    rows = mixed_rows()
    calls = []
    token_length_stats(
        tokenizer, rows, MAX_LENGTH, progress=lambda done, total: calls.append((done, total)), batch_size=4
    )
    assert len(calls) == math.ceil(len(rows) / 4)
    assert [done for done, _ in calls] == sorted({done for done, _ in calls})
    assert calls[-1] == (len(rows), len(rows)) and {total for _, total in calls} == {len(rows)}

    calls.clear()
    token_length_stats(
        tokenizer, iter(rows), MAX_LENGTH, progress=lambda d, t: calls.append((d, t)), batch_size=4
    )
    assert calls[-1] == (len(rows), None)  # a plain iterator has no length unless `total` is given


def test_cancel_between_batches(tokenizer):
    rows = mixed_rows()
    cancel = threading.Event()
    calls = []

    def progress(done, total):
        calls.append(done)
        cancel.set()

    with pytest.raises(Cancelled):
        token_length_stats(tokenizer, rows, MAX_LENGTH, progress=progress, batch_size=4, cancel=cancel)
    assert calls == [4]
    assert not [t for t in threading.enumerate() if t.name.startswith("token-stats")]

    with pytest.raises(Cancelled):
        token_length_stats(tokenizer, rows, MAX_LENGTH, progress=progress, cancel=cancel)
    assert calls == [4]  # already set: nothing is done


@pytest.fixture
def counted(monkeypatch):
    """How many batches get tokenized."""
    count = {"batches": 0}
    real = tokenizing._tokenize

    def counting(*args):
        count["batches"] += 1
        return real(*args)

    monkeypatch.setattr(tokenizing, "_tokenize", counting)
    return count


def test_cache_hit_skips_tokenizing_and_misses_on_any_change(tokenizer, tmp_path, monkeypatch, counted):
    monkeypatch.setenv("WHETSTONE_HOME", str(tmp_path / "home"))
    data = write_jsonl(tmp_path / "data.jsonl", fact_rows(3))

    def stats_for(max_length=MAX_LENGTH, tok=tokenizer, read_options=None):
        calls = []
        stats = cached_token_length_stats(
            tok,
            data,
            read_data(data).rows,
            max_length,
            progress=lambda d, t: calls.append((d, t)),
            read_options=read_options,
        )
        return stats, calls

    first, _ = stats_for()
    assert counted["batches"] == 1 and first.rows == 9
    assert len(list(stats_cache_dir().glob("*.json"))) == 1
    again, calls = stats_for()
    assert counted["batches"] == 1, "a cache hit must not tokenize"
    assert again.as_dict() == first.as_dict() and calls == [(9, 9)]

    stats_for(max_length=MAX_LENGTH + 1)
    assert counted["batches"] == 2
    other = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    other.chat_template += "{# a changed template #}"
    stats_for(tok=other)
    assert counted["batches"] == 3
    stats_for(read_options={"format": "messages"})
    assert counted["batches"] == 4
    write_jsonl(data, fact_rows(4))
    grown, _ = stats_for()
    assert counted["batches"] == 5 and grown.rows == 12
    assert len(list(stats_cache_dir().glob("*.json"))) == 5


@pytest.mark.parametrize("garbage", ["{not json", '{"rows": "many"}', "[]", ""])
def test_a_corrupt_cache_file_is_recomputed_and_rewritten(tokenizer, tmp_path, monkeypatch, counted, garbage):
    monkeypatch.setenv("WHETSTONE_HOME", str(tmp_path / "home"))
    data = write_jsonl(tmp_path / "data.jsonl", fact_rows(2))
    rows = read_data(data).rows
    first = cached_token_length_stats(tokenizer, data, rows, MAX_LENGTH)
    (path,) = stats_cache_dir().glob("*.json")
    path.write_text(garbage)

    recovered = cached_token_length_stats(tokenizer, data, rows, MAX_LENGTH)
    assert counted["batches"] == 2 and recovered.as_dict() == first.as_dict()
    assert TokenStats.from_dict(json.loads(path.read_text())) == first
    cached_token_length_stats(tokenizer, data, rows, MAX_LENGTH)
    assert counted["batches"] == 2
