"""Model shapes, a tokenizer, random-weight model folders and chat data for gpu_throughput.py.

Nothing is downloaded. The tokenizer is a small byte-level BPE trained in code on the benchmark's own
word list (each word is about one token, so row lengths in words are lengths in tokens) with a
ChatML template. Each model is a Llama with the dimensions of a real model, random bf16 weights and
the real model's vocabulary width (wider than the tokenizer, which only ever emits low ids), so the
logits, and the memory the loss needs, are the real size.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

WORDS = (
    "model data token train adapter weight layer loss batch step rank alpha quant memory offline "
    "desktop stone sharp blade edge grind polish fine tune answer question kernel packing chunk "
    "attention gradient optimizer schedule warmup length context window sequence vocabulary"
).split()
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
MARKER = "whetstone-bench-shape.json"  # written last: a folder with it is complete and can be reused


@dataclass(frozen=True)
class Shape:
    name: str
    like: str  # the real model whose dimensions these are
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int  # 0: the tokenizer's size
    tied: bool  # input embeddings shared with the output head
    steps: int  # default optimizer steps for the throughput part
    weight: float  # its share of the time budget, per side

    def parameters(self, vocab: int | None = None) -> int:
        vocab = vocab or self.vocab
        head_dim = self.hidden // self.heads
        attention = 2 * self.hidden * self.hidden + 2 * self.hidden * self.kv_heads * head_dim
        layer = attention + 3 * self.hidden * self.intermediate + 2 * self.hidden
        embeddings = vocab * self.hidden * (1 if self.tied else 2)
        return self.layers * layer + embeddings + self.hidden


SHAPES = {
    "0.5b": Shape("0.5b", "Qwen2.5-0.5B", 896, 24, 14, 2, 4864, 151936, True, 16, 1.0),
    "1.5b": Shape("1.5b", "Qwen2.5-1.5B", 1536, 28, 12, 2, 8960, 151936, True, 12, 1.5),
    "8b": Shape("8b", "Llama-3-8B", 4096, 32, 32, 8, 14336, 128256, False, 8, 3.5),
}
SMOKE = Shape("smoke", "tiny (CPU smoke)", 64, 2, 4, 2, 128, 0, True, 3, 1.0)


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    rng = random.Random(0)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(24)) + "?." for _ in range(400)]
    bpe.train_from_iterator(corpus + ["user\n", "assistant\n", "system\n"] * 50, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        additional_special_tokens=SPECIALS,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def complete_folder(folder: Path, shape: Shape) -> bool:
    try:
        return json.loads((folder / MARKER).read_text())["shape"] == asdict(shape)
    except (OSError, ValueError, KeyError):
        return False


def check_disk(folder: Path, shape: Shape) -> None:
    """Refuse early, in one line, where the bf16 weights would not fit on the disk."""
    need = shape.parameters(shape.vocab or 1024) * 2 * 1.05 + 2**29
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need:
        raise SystemExit(
            f"error: the {shape.name} model needs {need / 2**30:.1f} GiB on disk but {probe} has "
            f"{free / 2**30:.1f} GiB free; free some space or pass --models-dir on a larger disk"
        )


def build_model_folder(shape: Shape, folder: Path, device: str) -> dict:
    """Write a random-weight bf16 Llama of `shape` with the tokenizer; reuse a complete one."""
    if complete_folder(folder, shape):
        return json.loads((folder / MARKER).read_text())
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    check_disk(folder, shape)
    shutil.rmtree(folder, ignore_errors=True)
    tokenizer = build_tokenizer()
    vocab = max(shape.vocab, len(tokenizer))
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        max_position_embeddings=131072,
        tie_word_embeddings=shape.tied,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # an 8B model built in fp32 would need twice the memory
    try:
        with torch.device(device):  # random init on the GPU takes seconds; on 16 CPU cores, minutes
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    model = model.to("cpu")
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(str(folder), max_shard_size="4GB")
    tokenizer.save_pretrained(str(folder))
    del model
    info = {"shape": asdict(shape), "parameters": params, "vocab": vocab, "tokenizer_size": len(tokenizer)}
    (folder / MARKER).write_text(json.dumps(info))
    return info


def make_chats(path: Path, rows: int, longest: int, seed: int = 0) -> None:
    """Two-turn chats of varied length in tokens: half short, a third medium, some up to `longest`.

    Roughly one token per word with build_tokenizer(); the longest rows exceed `longest` a little
    once templated, so training truncates a few, as it does with real data.
    """
    rng = random.Random(seed)
    with open(path, "w") as handle:
        for _ in range(rows):
            n_user = rng.randint(4, max(5, longest // 16))
            draw = rng.random()
            if draw < 0.5:
                n_reply = rng.randint(3, max(4, longest // 8))
            elif draw < 0.85:
                n_reply = rng.randint(longest // 8, max(longest // 8 + 1, longest // 2))
            else:
                n_reply = rng.randint(longest // 2, longest)
            user = " ".join(rng.choice(WORDS) for _ in range(n_user)) + "?"
            reply = " ".join(rng.choice(WORDS) for _ in range(n_reply)) + "."
            row = {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]}
            handle.write(json.dumps(row) + "\n")
