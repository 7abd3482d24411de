from __future__ import annotations

import pytest
from testkit.tiny_model import write_jsonl
from transformers import AutoTokenizer

from engine.config import DataConfig
from engine.data.prepare import PadCollator, prepare_data
from engine.data.reading import read_data
from engine.data.rendering import IGNORE_INDEX, render_row
from engine.errors import DataError


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


def trained_text(tokenizer, rendered):
    return tokenizer.decode(
        [t for t, label in zip(rendered.input_ids, rendered.labels, strict=True) if label != IGNORE_INDEX]
    )


def test_only_assistant_turns_and_their_end_of_turn_are_trained(tokenizer):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Colour?"},
        {"role": "assistant", "content": "Green."},
    ]
    rendered = render_row(tokenizer, messages, 512)
    assert tokenizer.pad_token_id == tokenizer.eos_token_id  # the hazard this must survive
    assert trained_text(tokenizer, rendered) == "Hello.<|im_end|>Green.<|im_end|>"
    assert [rendered.text[a:b] for a, b in rendered.spans] == ["Hello.<|im_end|>", "Green.<|im_end|>"]


def test_prompt_completion_goes_through_the_chat_template(tokenizer):
    rendered = render_row(tokenizer, {"prompt": "What colour?", "completion": "Green."}, 512)
    assert rendered.text.startswith("<|im_start|>user\nWhat colour?")
    assert trained_text(tokenizer, rendered) == "Green.<|im_end|>"


def test_without_a_chat_template_prompt_completion_is_plain_text_ending_in_eos(tokenizer):
    plain = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    plain.chat_template = None
    rendered = render_row(plain, {"prompt": "Q: colour? A: ", "completion": "Green."}, 512)
    assert rendered.text == "Q: colour? A: Green.<|im_end|>"
    assert trained_text(plain, rendered) == "Green.<|im_end|>"


def test_truncation_is_counted(tokenizer):
    messages = [{"role": "user", "content": "x " * 50}, {"role": "assistant", "content": "fine " * 30}]
    full = render_row(tokenizer, messages, 10_000)
    cut = render_row(tokenizer, messages, len(full.input_ids) - 7)
    assert cut.truncated_tokens == 7
    assert len(cut.input_ids) == len(full.input_ids) - 7


def test_bad_rows_are_reported_with_line_numbers_and_good_rows_kept(tmp_path):
    good = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            good,
            "{not json",
            {"messages": [{"role": "wizard", "content": "a"}, {"role": "assistant", "content": "b"}]},
            {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "  "}]},
            {"messages": [{"role": "user", "content": "a"}]},
            {"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "b"}]},
            good,
        ],
    )
    with open(path, "ab") as handle:
        handle.write(b'\n{"messages": "\xff"}\n')
    result = read_data(path)
    assert result.format == "messages" and result.shape.reason == "it has the column messages"
    assert len(result.rows) == 2 and result.line_numbers == [1, 7]
    problems = {p.line: p for p in result.problems}
    assert problems[2].kind == "invalid_json" and problems[2].message.startswith("invalid JSON")
    assert problems[3].kind == "unknown_role" and "'wizard'" in problems[3].message
    assert problems[4].kind == "empty_assistant"
    assert problems[5].message == "conversation does not end with the assistant"
    assert problems[6].kind == "wrong_type"
    assert problems[7].kind == "duplicate" and problems[7].message == "exact duplicate of row 1"
    assert problems[9].kind == "not_utf8" and problems[9].row == 8  # blank line 8 is not a record
    assert result.skipped_by_reason() == {
        "invalid_json": 1,
        "unknown_role": 1,
        "empty_assistant": 1,
        "not_ending_with_assistant": 1,
        "wrong_type": 1,
        "not_utf8": 1,
    }


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "is empty"),
        (b"\n\n", "is empty"),
        (b'{"body": "hello"}\n', "Cannot tell the data's shape"),
        (b"{bad\n{worse\n", "no usable rows"),
    ],
)
def test_unusable_files_raise_a_clear_data_error(tmp_path, content, match):
    path = tmp_path / "d.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match):
        read_data(path)


def test_prepare_splits_validation_and_reports(tmp_path, tokenizer):
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(20)
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows + [{"messages": []}])
    data = prepare_data(tokenizer, DataConfig(path=str(path), validation_ratio=0.2, seed=1))
    assert (len(data.train), len(data.validation)) == (16, 4)
    assert data.report.skipped == {"wrong_type": 1} and data.report.rows_read == 21
    again = prepare_data(tokenizer, DataConfig(path=str(path), validation_ratio=0.2, seed=1))
    assert again.validation == data.validation  # the split is seeded


def test_rows_with_nothing_left_to_train_after_truncation_are_skipped(tmp_path, tokenizer):
    rows = [
        {"messages": [{"role": "user", "content": "word " * 40}, {"role": "assistant", "content": "ok"}]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    data = prepare_data(tokenizer, DataConfig(path=str(path), max_length=16))
    assert len(data.train) == 1
    assert data.report.skipped == {"no trainable tokens after truncation": 1}


def test_collator_masks_padding_even_when_pad_is_eos():
    batch = PadCollator(pad_token_id=2)(
        [
            {"input_ids": [5, 6, 2], "labels": [-100, 6, 2]},
            {"input_ids": [7], "labels": [7]},
        ]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 2], [7, 2, 2]]
    assert batch["labels"].tolist() == [[-100, 6, 2], [7, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
