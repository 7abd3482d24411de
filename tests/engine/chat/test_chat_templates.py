"""The label mask, token by token, on several chat templates built locally (no hub, no model).

The expected layout of every conversation is written out by hand below as (text, trained)
segments, independently of the chat template and of the engine's prefix rendering; each token
of `render_row` is then checked against it.
"""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from engine.data.prepare import PadCollator
from engine.data.rendering import IGNORE_INDEX, render_row

_TURN = "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
_GEN_PROMPT = "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
CHATML = "{% for message in messages %}" + _TURN + "{% endfor %}" + _GEN_PROMPT
SMOL_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
SMOLLM2 = (  # SmolLM2's template: a default system prompt when the conversation has none
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n"
    + SMOL_SYSTEM
    + "<|im_end|>\n' }}{% endif %}"
    + _TURN
    + "{% endfor %}"
    + _GEN_PROMPT
)
CHATML_GENERATION = (  # the assistant part is marked with {% generation %}, as transformers documents
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}"
    "{% endgeneration %}{{ '\n' }}{% else %}{{ message['content'] + '<|im_end|>\n' }}{% endif %}"
    "{% endfor %}" + _GEN_PROMPT
)
LLAMA3 = (  # Meta's Llama-3 template: bos inside the template, content trimmed, no newline after <|eot_id|>
    "{% for message in messages %}{% set content = '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
CHATML_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
LLAMA3_SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]
TEMPLATES = ["chatml", "smollm2", "chatml_generation", "llama3"]
END_OF_TURN = {name: "<|eot_id|>" if name == "llama3" else "<|im_end|>" for name in TEMPLATES}


def _chatml_segments(messages, default_system=None):
    segments = []
    if default_system and messages[0]["role"] != "system":
        segments.append((f"<|im_start|>system\n{default_system}<|im_end|>\n", False))
    for message in messages:
        segments.append((f"<|im_start|>{message['role']}\n", False))
        if message["role"] == "assistant":
            segments += [(message["content"] + "<|im_end|>", True), ("\n", False)]
        else:
            segments.append((message["content"] + "<|im_end|>\n", False))
    return segments


def _llama3_segments(messages):
    segments = [("<|begin_of_text|>", False)]
    for message in messages:
        segments.append((f"<|start_header_id|>{message['role']}<|end_header_id|>\n\n", False))
        segments.append((message["content"].strip() + "<|eot_id|>", message["role"] == "assistant"))
    return segments


SEGMENTS = {
    "chatml": _chatml_segments,
    "smollm2": lambda messages: _chatml_segments(messages, default_system=SMOL_SYSTEM),
    "chatml_generation": _chatml_segments,
    "llama3": _llama3_segments,
}


def _build(specials, template, bos, eos):
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = ["user assistant system Hello there, how are you? Fine, thanks. The capital is Quillhaven."] * 3
    bpe.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    if bos:  # like Meta's tokenizer: add_special_tokens=True would put a second bos before the template's one
        bos_id = bpe.token_to_id(bos)
        bpe.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, bos_id)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=bos,
        eos_token=eos,
        pad_token=eos,
        unk_token=None,
        additional_special_tokens=specials,
    )
    tokenizer.chat_template = template
    return tokenizer


@pytest.fixture(scope="module")
def tokenizers():
    return {
        "chatml": _build(CHATML_SPECIALS, CHATML, None, "<|im_end|>"),
        "smollm2": _build(CHATML_SPECIALS, SMOLLM2, None, "<|im_end|>"),
        "chatml_generation": _build(CHATML_SPECIALS, CHATML_GENERATION, None, "<|im_end|>"),
        "llama3": _build(LLAMA3_SPECIALS, LLAMA3, "<|begin_of_text|>", "<|end_of_text|>"),
    }


def _turns(*contents, system=None):
    messages = [{"role": "system", "content": system}] if system else []
    for i, content in enumerate(contents):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": content})
    return messages


CONVERSATIONS = {
    "single": _turns("Hello there", "Fine, thanks."),
    "multi_with_system": _turns(
        "Hi",
        "Hello! How are you?",
        "Capital?",
        " Très bien, Quillhaven. ",
        "Thanks",
        "You are welcome.",
        system="Be brief.",
    ),
    "multi_without_system": _turns("Hi", "Hello!", "How are you?", "Fine, thanks."),
    # the same words everywhere: only the position, not the text, may decide what is trained
    "same_words_everywhere": _turns(
        "Fine, thanks.", "Fine, thanks.", "Fine, thanks.", "Fine, thanks.", system="Fine, thanks."
    ),
}


def _decode(tokenizer, ids):
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def check_token_by_token(tokenizer, rendered, segments, end_of_turn):
    text = "".join(piece for piece, _ in segments)
    assert rendered.text == text
    trained_char = [trained for piece, trained in segments for _ in piece]
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    assert rendered.input_ids == encoded["input_ids"]
    assert len(rendered.labels) == len(rendered.input_ids)
    runs, run, untrained = [], [], []
    for i, (token, label, (a, b)) in enumerate(
        zip(rendered.input_ids, rendered.labels, encoded["offset_mapping"], strict=True)
    ):
        where = f"token {i} {_decode(tokenizer, [token])!r} at {a}:{b} of {text!r}"
        kinds = set(trained_char[a:b])
        assert len(kinds) == 1, f"{where} straddles a trained/untrained boundary"
        expected = kinds.pop()
        assert (label != IGNORE_INDEX) == expected, (
            f"{where}: trained={label != IGNORE_INDEX}, expected {expected}"
        )
        if expected:
            assert label == token, where
            run.append(token)
        else:
            untrained.append(token)
            if run:
                runs.append(run)
                run = []
    if run:
        runs.append(run)
    trained_segments = [piece for piece, trained in segments if trained]
    # every assistant turn, in order, is trained as exactly "<content><end-of-turn>" ...
    assert [_decode(tokenizer, r) for r in runs] == trained_segments
    assert [text[a:b] for a, b in rendered.spans] == trained_segments
    # ... ending with the end-of-turn token, so the model learns to stop ...
    assert all(r[-1] == tokenizer.convert_tokens_to_ids(end_of_turn) for r in runs)
    # ... and everything else (system, user, headers, newlines) is untrained.
    assert _decode(tokenizer, untrained) == "".join(piece for piece, trained in segments if not trained)
    assert rendered.trained_tokens == sum(map(len, runs))
    assert rendered.truncated_tokens == 0


@pytest.mark.parametrize("conversation", CONVERSATIONS)
@pytest.mark.parametrize("name", TEMPLATES)
def test_label_mask_token_by_token(tokenizers, name, conversation):
    tokenizer, messages = tokenizers[name], CONVERSATIONS[conversation]
    rendered = render_row(tokenizer, messages, 4096)
    check_token_by_token(tokenizer, rendered, SEGMENTS[name](messages), END_OF_TURN[name])
    # the same ids the template's own tokenization gives: no second bos, no appended eos
    assert (
        rendered.input_ids
        == tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    )


@pytest.mark.parametrize("name", TEMPLATES)
def test_prompt_completion_rows_are_masked_like_a_single_turn(tokenizers, name):
    tokenizer = tokenizers[name]
    rendered = render_row(tokenizer, {"prompt": "Capital?", "completion": "Quillhaven."}, 4096)
    segments = SEGMENTS[name](_turns("Capital?", "Quillhaven."))
    check_token_by_token(tokenizer, rendered, segments, END_OF_TURN[name])


def test_expected_trained_text_literally(tokenizers):
    messages = CONVERSATIONS["multi_with_system"]
    for name, eot in [("chatml", "<|im_end|>"), ("llama3", "<|eot_id|>")]:
        rendered = render_row(tokenizers[name], messages, 4096)
        content = (
            " Très bien, Quillhaven. " if name == "chatml" else "Très bien, Quillhaven."
        )  # Llama-3 trims
        assert [rendered.text[a:b] for a, b in rendered.spans] == [
            f"Hello! How are you?{eot}",
            f"{content}{eot}",
            f"You are welcome.{eot}",
        ]
    assert render_row(tokenizers["smollm2"], _turns("Hi", "Hello!"), 4096).text.startswith(
        f"<|im_start|>system\n{SMOL_SYSTEM}<|im_end|>\n<|im_start|>user\nHi"
    )


@pytest.mark.parametrize("conversation", CONVERSATIONS)
def test_prefix_rendering_matches_generation_markers(tokenizers, conversation):
    tokenizer, messages = tokenizers["chatml_generation"], CONVERSATIONS[conversation]
    rendered = render_row(tokenizer, messages, 4096)
    marked = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    assert marked["input_ids"] == rendered.input_ids
    assert sum(marked["assistant_masks"]) > 0
    assert marked["assistant_masks"] == [int(label != IGNORE_INDEX) for label in rendered.labels]


@pytest.mark.parametrize("name", TEMPLATES)
def test_pad_equal_to_eos_neither_masks_nor_unmasks_anything(tokenizers, name):
    tokenizer = tokenizers[name]
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    eot = tokenizer.convert_tokens_to_ids(END_OF_TURN[name])
    messages = CONVERSATIONS["multi_with_system"]
    rendered = render_row(tokenizer, messages, 4096)
    eot_labels = [
        label for token, label in zip(rendered.input_ids, rendered.labels, strict=True) if token == eot
    ]
    roles = [m["role"] for m in messages]
    # one end-of-turn per message: trained after the assistant, untrained after system and user
    assert [label != IGNORE_INDEX for label in eot_labels] == [role == "assistant" for role in roles]
    if name == "llama3":  # <|eot_id|> ends turns; eos (== pad) is never part of a chat row
        assert eot != tokenizer.eos_token_id and tokenizer.eos_token_id not in rendered.input_ids
    short = render_row(tokenizer, CONVERSATIONS["single"], 4096)
    batch = PadCollator(tokenizer.pad_token_id)(
        [{"input_ids": r.input_ids, "labels": r.labels} for r in (rendered, short)]
    )
    n = len(short.input_ids)
    assert (
        batch["labels"][1, :n].tolist() == short.labels
    )  # the short row's last <|im_end|>/<|eot_id|> stays trained
    assert short.labels[-1 if name == "llama3" else -2] == eot
    assert set(batch["labels"][1, n:].tolist()) == {IGNORE_INDEX}  # padding (pad id == eos) is never trained
    assert set(batch["input_ids"][1, n:].tolist()) == {tokenizer.pad_token_id}


@pytest.mark.parametrize("name", TEMPLATES)
def test_truncation_cuts_ids_and_labels_together(tokenizers, name):
    tokenizer, messages = tokenizers[name], CONVERSATIONS["multi_with_system"]
    full = render_row(tokenizer, messages, 4096)
    assert render_row(tokenizer, messages, len(full.input_ids)).truncated_tokens == 0
    for max_length in range(1, len(full.input_ids)):
        cut = render_row(tokenizer, messages, max_length)
        assert cut.input_ids == full.input_ids[:max_length]
        assert cut.labels == full.labels[:max_length]
        assert cut.truncated_tokens == len(full.input_ids) - max_length
    # a cut inside the last assistant turn keeps the start of its answer trained, without its end-of-turn
    last_end = max(i for i, label in enumerate(full.labels) if label != IGNORE_INDEX)
    last_start = max(i for i in range(last_end) if full.labels[i] == IGNORE_INDEX) + 1
    cut = render_row(tokenizer, messages, last_start + 3)
    assert cut.labels[-3:] == cut.input_ids[-3:]
    answer = _decode(tokenizer, cut.input_ids[-3:])
    assert answer and "You are welcome.".startswith(answer)


@pytest.mark.parametrize("name", TEMPLATES)
def test_conversation_opening_with_the_assistant_trains_only_its_content(tokenizers, name):
    messages = [{"role": "assistant", "content": "Ask me."}, *_turns("Capital?", "Quillhaven.")]
    rendered = render_row(tokenizers[name], messages, 4096)
    check_token_by_token(tokenizers[name], rendered, SEGMENTS[name](messages), END_OF_TURN[name])
