"""A finished full fine-tuning run folder of the tiny model, made in a few seconds without the recipe:
config.toml (method "full"), events.jsonl ending "done", and RUN_DIR/model written by
engine.training.full_finetune (trained on the tiny facts with a plain torch loop)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from engine.config import ModelConfig, QuantizationConfig, config_to_toml
from testkit.engine_helpers import tiny_config
from testkit.tiny_model import FACTS, fact_rows, write_jsonl


def prompt_ids(tokenizer, question: str) -> list[int]:
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def fact_batch(tokenizer) -> dict:
    """Every tiny fact as one ChatML row, the loss on the answer and its end of turn only."""
    import torch

    rows = []
    for question, answer in FACTS:
        prompt = prompt_ids(tokenizer, question)
        full = prompt + tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
        rows.append((full, [-100] * len(prompt) + full[len(prompt) :]))
    longest = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id
    return {
        "input_ids": torch.tensor([r + [pad] * (longest - len(r)) for r, _ in rows]),
        "labels": torch.tensor([lab + [-100] * (longest - len(lab)) for _, lab in rows]),
        "attention_mask": torch.tensor([[1] * len(r) + [0] * (longest - len(r)) for r, _ in rows]),
    }


def train_facts(model, tokenizer, steps: int, lr: float = 1e-2) -> None:
    """A few real AdamW steps on the trainable parameters (a plain torch loop, no Trainer)."""
    import torch

    torch.manual_seed(0)
    batch = fact_batch(tokenizer)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def make_full_run(tiny_model_dir: Path, folder: Path, steps: int = 30) -> Path:
    """A done full fine-tuning run at `folder` whose model/ answers the tiny facts."""
    from transformers import AutoTokenizer

    from engine.training.full_finetune import load_full_model, save_full_model

    folder.mkdir(parents=True)
    data = write_jsonl(folder.parent / f"{folder.name}-facts.jsonl", fact_rows())
    config = tiny_config(tiny_model_dir, data, training__method="full", data__validation_ratio=0.0)
    (folder / "config.toml").write_text(config_to_toml(config), encoding="utf-8")
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = load_full_model(ModelConfig(path=str(tiny_model_dir)), QuantizationConfig(), "cpu", "all")
    train_facts(model, tokenizer, steps)
    save_full_model(model, tokenizer, folder / "model")
    now = time.time()
    events = [
        {"type": "status", "time": now, "state": "training"},
        {"type": "status", "time": now, "state": "done", "step": steps, "model": str(folder / "model")},
    ]
    (folder / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return folder
