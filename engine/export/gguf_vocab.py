"""The tokenizer part of a GGUF file, written the way llama.cpp's convert_hf_to_gguf.py writes it.

Byte-level BPE vocabularies (GPT-2 style: SmolLM2, Qwen, Llama 3) become tokenizer model "gpt2"
with tokens, token types, merges and a pre-tokenizer name; SentencePiece-style ones (Llama 2,
Mistral: BPE with byte fallback) become "llama" with tokens, scores and token types. Special ids,
add-bos/eos flags and the chat template come from gguf.SpecialVocab, as in llama.cpp.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from engine.errors import ModelError

log = logging.getLogger(__name__)

# Split patterns of the pre-tokenizers llama.cpp knows by name (tokenizer.json "Split" regexes).
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_SPLITS = {_LLAMA3_SPLIT: "llama-bpe", _QWEN2_SPLIT: "qwen2"}


def read_tokenizer_json(model_dir: Path) -> dict[str, Any]:
    file = model_dir / "tokenizer.json"
    if not file.is_file():
        raise ModelError(
            f"{model_dir} has no tokenizer.json.",
            "GGUF export needs a fast tokenizer file; save the tokenizer with transformers first.",
        )
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{file} cannot be read: {exc}.", "Copy the model folder again.") from None


def tokenizer_kind(tok_json: dict[str, Any]) -> str:
    """'gpt2' (byte-level BPE) or 'llama' (SentencePiece-style BPE with byte fallback)."""
    model = tok_json.get("model") or {}
    if model.get("type") == "BPE" and model.get("byte_fallback"):
        return "llama"
    if model.get("type") == "BPE":
        return "gpt2"
    raise ModelError(
        f"The tokenizer type {model.get('type')!r} cannot be exported to GGUF yet.",
        "Supported: byte-level BPE (Llama 3, Qwen, SmolLM) and SentencePiece BPE (Llama 2, Mistral).",
    )


def pre_tokenizer_name(tok_json: dict[str, Any]) -> str:
    """The llama.cpp pre-tokenizer that splits text like this tokenizer.json does.

    llama.cpp identifies it by hashing a test tokenization against a list of known models; we
    read the pre-tokenizer definition instead, which needs no list and no network.
    """
    pre = tok_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [step.get("type") for step in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if (
        kinds == ["Digits", "ByteLevel"]
        and steps[0].get("individual_digits")
        and steps[1].get("use_regex", True)
    ):
        return "smollm"  # GPT-2 regex after splitting every digit (SmolLM, StarCoder)
    for step in steps:
        if step.get("type") == "Split":
            name = _SPLITS.get((step.get("pattern") or {}).get("Regex"))
            if name:
                return name
    log.warning("Unrecognised pre-tokenizer %s; llama.cpp will use its default splitting", kinds)
    return "default"


def _hf_tokens(tokenizer, vocab_size: int):
    """(tokens, types) for ids 0..vocab_size-1, as convert_hf_to_gguf.get_vocab_base builds them."""
    import gguf

    reverse = {index: token for token, index in tokenizer.get_vocab().items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for index in range(vocab_size):
        token = reverse.get(index)
        if token is None:  # the embedding matrix is padded past the tokenizer
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        elif token in added:
            info = decoder.get(index)
            special = bool(info and info.special) or (token.startswith("<|") and token.endswith("|>"))
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def _sentencepiece_tokens(model_dir: Path, vocab_size: int):
    import gguf
    from gguf.vocab import LlamaHfVocab

    vocab = LlamaHfVocab(model_dir)
    tokens, scores, types = [], [], []
    for text, score, kind in vocab.all_tokens():
        tokens.append(text)
        scores.append(score)
        types.append(kind)
    for index in range(len(tokens), vocab_size):
        tokens.append(f"[PAD{index}]".encode())
        scores.append(-1000.0)
        types.append(gguf.TokenType.UNUSED)
    return tokens[:vocab_size], scores[:vocab_size], types[:vocab_size]


def add_tokenizer(writer, model_dir: Path, vocab_size: int) -> dict[str, Any]:
    """Write tokenizer.* keys into `writer`; return a summary (kind, pre, special ids)."""
    import gguf
    from transformers import AutoTokenizer

    tok_json = read_tokenizer_json(model_dir)
    kind = tokenizer_kind(tok_json)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"The tokenizer in {model_dir} cannot be loaded: {exc}", "Check the model folder."
        ) from None
    if len(tokenizer.get_vocab()) > vocab_size:
        raise ModelError(
            f"The tokenizer has {len(tokenizer.get_vocab())} tokens but the model only {vocab_size}.",
            "The tokenizer does not belong to this model.",
        )
    pre = None
    if kind == "gpt2":
        tokens, types = _hf_tokens(tokenizer, vocab_size)
        pre = pre_tokenizer_name(tok_json)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre)
        writer.add_token_list(tokens)
        writer.add_token_types(types)
    else:
        tokens, scores, types = _sentencepiece_tokens(model_dir, vocab_size)
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=(kind == "gpt2"), n_vocab=vocab_size)
    # Say explicitly whether BOS is prepended: llama.cpp's default differs by vocab type.
    if "bos" not in special.add_special_token:
        ids = tokenizer("a", add_special_tokens=True)["input_ids"]
        bos = tokenizer.bos_token_id
        special.add_special_token["bos"] = bos is not None and bool(ids) and ids[0] == bos
    special.add_to_gguf(writer, quiet=True)
    return {
        "kind": kind,
        "pre": pre,
        "special": dict(special.special_token_ids),
        "chat_template": special.chat_template is not None,
    }
