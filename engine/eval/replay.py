"""Replay against forgetting: the base model's own answers to general prompts, mixed into training.

Training on what the base itself says to general requests (self-distillation) holds its general
behaviour in place while the adapter learns the user's data, and needs no outside dataset. The
prompts are the forgetting probe's unscored ones (instructions, code, refusals) and the general
set (resources/probes/general.jsonl: arithmetic, facts, formatting, instructions, code and
refusals in the probe's categories, none of its items): the scored items stay held out, so the
probe still measures what replay kept. Only as many prompts are answered as the mix needs, in a
seeded order, and each answer is cached per base model and prompt; only answers that ended on
their own are used, so no row teaches the model to stop mid-sentence.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from engine.config import QuantizationConfig
from engine.eval.cache import AnswerCache, default_cache_dir
from engine.eval.probes import VERSIONS
from engine.eval.sets import EvalItem

REPLAY_TOKENS = 96
"""Longest replay answer generated; longer ones are dropped as unfinished."""


def replay_prompts() -> list[EvalItem]:
    from engine.eval import probes

    unscored = [item for item in probes.forgetting_set().items if item.scorer is None]
    return unscored + list(probes.general_set().items)


def replay_count(ratio: float, train_rows: int, available: int) -> int:
    """Rows to add so they are `ratio` of the mix (capped by what there is)."""
    if ratio <= 0 or train_rows <= 0:
        return 0
    return min(available, max(1, round(ratio * train_rows / (1.0 - ratio))))


def _prompt_key(item: EvalItem) -> str:
    return json.dumps(item.messages, ensure_ascii=False)


def replay_conversations(
    model,
    tokenizer,
    fingerprint: str,
    quant: QuantizationConfig,
    device: str,
    count: int,
    seed: int,
    cache_dir: Path | None = None,
    shipped: dict[str, str | None] | None = None,
) -> list[list[dict[str, str]]]:
    """Up to `count` of the base's finished greedy answers, as conversations (prompts in a seeded order).

    Prompts are answered a chunk at a time until `count` answers finished (a quarter more are asked
    than missing, since some run past REPLAY_TOKENS); answers already cached are never generated again,
    nor are `shipped` ones (prompt -> the base's answer text, None if it did not finish: the demo's).
    """
    from engine.eval.scoring import ScoringModel

    scoring = ScoringModel(model, tokenizer)
    prompts = replay_prompts()
    order = random.Random(seed).sample(prompts, k=len(prompts))
    cache = AnswerCache(cache_dir or default_cache_dir())
    parts = {
        "probe": "replay",
        "prompts": {"forgetting": VERSIONS["forgetting"], "general": VERSIONS["general"]},
        "model": fingerprint,
        "max_new_tokens": REPLAY_TOKENS,
        "device": device,
        "quantization": vars(quant),
    }
    known = cache.get_by_prompt("replay", parts)
    conversations: list[list[dict[str, str]]] = []
    position = 0
    while len(conversations) < count and position < len(order):
        missing = count - len(conversations)
        chunk = order[position : position + missing + missing // 4 + 1]
        position += len(chunk)
        for item in chunk:
            if _prompt_key(item) not in known and shipped and item.prompt in shipped:
                text = shipped[item.prompt]  # a finished answer ends with end-of-turn, as generated
                ids = [*scoring.text_ids(text, False), scoring.eos_ids[0]] if text else []
                known[_prompt_key(item)] = ids
        new = [item for item in chunk if _prompt_key(item) not in known]
        if new:
            was_training = model.training
            model.eval()
            answers = scoring.generate(
                [scoring.prompt_ids(list(item.messages)) for item in new], REPLAY_TOKENS
            )
            model.train(was_training)
            known.update({_prompt_key(item): ids for item, ids in zip(new, answers, strict=True)})
            cache.put("replay", parts, known)
        for item in chunk:
            ids = known[_prompt_key(item)]
            text = scoring.decode(ids)
            if ids and ids[-1] in scoring.eos_ids and text:
                conversations.append([*map(dict, item.messages), {"role": "assistant", "content": text}])
    return conversations[:count]


def replay_rows(
    conversations: list[list[dict[str, str]]], tokenizer, max_length: int
) -> list[dict[str, list[int]]]:
    """The conversations tokenized the way training rows are."""
    from engine.data.tokenizing import iter_rendered

    rows = []
    for batch in iter_rendered(tokenizer, conversations, max_length):
        for rendered in batch:
            if not isinstance(rendered, ValueError) and rendered.trained_tokens:
                rows.append({"input_ids": rendered.input_ids, "labels": rendered.labels})
    return rows
