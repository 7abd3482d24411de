"""Replay against forgetting: the base model's own answers to general prompts, mixed into training.

Training on what the base itself says to general requests (self-distillation) holds its general
behaviour in place while the adapter learns the user's data, and needs no outside dataset. The
prompts are the forgetting probe's unscored ones (instructions, code, refusals): the scored ones
stay held out, so the probe still measures what replay kept. The base answers once per model
(cached like the probe's answers); only answers that ended on their own are used, so no row
teaches the model to stop mid-sentence.
"""

from __future__ import annotations

import random
from pathlib import Path

from engine.config import QuantizationConfig
from engine.eval.cache import AnswerCache, default_cache_dir
from engine.eval.probes import VERSIONS, forgetting_set
from engine.eval.sets import EvalItem

REPLAY_TOKENS = 160
"""Longest replay answer generated; longer ones are dropped as unfinished."""


def replay_prompts() -> list[EvalItem]:
    return [item for item in forgetting_set().items if item.scorer is None]


def replay_count(ratio: float, train_rows: int, available: int) -> int:
    """Rows to add so they are `ratio` of the mix (capped by what there is)."""
    if ratio <= 0 or train_rows <= 0:
        return 0
    return min(available, max(1, round(ratio * train_rows / (1.0 - ratio))))


def replay_conversations(
    model,
    tokenizer,
    fingerprint: str,
    quant: QuantizationConfig,
    device: str,
    cache_dir: Path | None = None,
) -> list[list[dict[str, str]]]:
    """The base's finished greedy answers to the replay prompts, as conversations (cached per model)."""
    from engine.eval.scoring import ScoringModel

    scoring = ScoringModel(model, tokenizer)
    items = replay_prompts()
    cache = AnswerCache(cache_dir or default_cache_dir())
    parts = {
        "probe": "replay",
        "version": VERSIONS["forgetting"],
        "model": fingerprint,
        "max_new_tokens": REPLAY_TOKENS,
        "device": device,
        "quantization": vars(quant),
    }
    answers = cache.get("replay", parts, len(items))
    if answers is None:
        was_training = model.training
        model.eval()
        answers = scoring.generate([scoring.prompt_ids(list(item.messages)) for item in items], REPLAY_TOKENS)
        model.train(was_training)
        cache.put("replay", parts, answers)
    conversations = []
    for item, ids in zip(items, answers, strict=True):
        text = scoring.decode(ids)
        if ids and ids[-1] in scoring.eos_ids and text:
            conversations.append([*map(dict, item.messages), {"role": "assistant", "content": text}])
    return conversations


def replay_rows(
    conversations: list[list[dict[str, str]]], count: int, seed: int, tokenizer, max_length: int
) -> list[dict[str, list[int]]]:
    """`count` of the conversations (a seeded choice), tokenized the way training rows are."""
    from engine.data.tokenizing import iter_rendered

    chosen = random.Random(seed).sample(conversations, min(count, len(conversations)))
    rows = []
    for batch in iter_rendered(tokenizer, chosen, max_length):
        for rendered in batch:
            if not isinstance(rendered, ValueError) and rendered.trained_tokens:
                rows.append({"input_ids": rendered.input_ids, "labels": rendered.labels})
    return rows
