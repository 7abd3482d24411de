"""The forgetting probe: did tuning cost the base's general ability?

The base answers ~200 general prompts greedily once (cached per base model). Each adapter is
then run teacher-forced on those answers, one forward pass per prompt: the per-token KL
divergence from the base, and whether its own greedy choice differs anywhere (then its answer
changed). Only changed answers of scorable items are generated again, to score them; an
unchanged answer scores as the base's did. So a tuned model costs a fraction of a full run.
"""

from __future__ import annotations

from typing import Any

from engine.eval.probes import VERSIONS
from engine.eval.scorers import score_reply
from engine.eval.sets import EvalSet

PROBE = "forgetting"
ANSWER_TOKENS = {"number": 16, "exact": 16, "contains": 32, "regex": 32, "json": 64}
"""The longest answer generated per scorer: enough for a checkable answer to come out (a number, a
word, a small JSON object), no more; unscored prompts get UNSCORED_TOKENS. The base and the tuned
model get the same budget, so scores compare; KL and "changed" look at the same tokens."""
UNSCORED_TOKENS = 48


def answer_budget(item, cap: int) -> int:
    return min(cap, ANSWER_TOKENS.get(item.scorer, UNSCORED_TOKENS))


class ForgettingProbe:
    def __init__(self, evaluation, eval_set: EvalSet) -> None:
        self.ev, self.set = evaluation, eval_set
        self.items = eval_set.items
        self.scoring = evaluation.scoring
        self.budgets = [answer_budget(item, evaluation.request.max_new_tokens) for item in self.items]

    def _base_answers(self, prompts: list[list[int]]) -> list[list[int]]:
        ev, progress = self.ev, self.ev.progress
        cache = ev.answer_cache()
        parts = {**ev.cache_parts(PROBE), "budgets": [ANSWER_TOKENS, UNSCORED_TOKENS]}
        answers = cache.get(PROBE, parts, len(prompts))
        if answers is not None:
            progress.advance(len(prompts))
            return answers
        progress.begin("General ability: the base model's own answers (once per base model)…")
        with self.scoring.use(None):
            answers = self.scoring.generate(prompts, self.budgets, progress.advance)
        cache.put(PROBE, parts, answers)
        return answers

    def run(self) -> list[dict[str, Any]]:
        """One result per column of the evaluation, in its order."""
        ev, scoring = self.ev, self.scoring
        prompts = [ev.conversation_ids(item) for item in self.items]
        base_ids = self._base_answers(prompts)
        base_text = [scoring.decode(ids) for ids in base_ids]
        base_passed = [score_reply(item, text) for item, text in zip(self.items, base_text, strict=True)]
        base_accuracy = _accuracy(base_passed)
        adapters = [name for _target, name in ev.columns if name is not None]
        ev.progress.begin("General ability: how far each tuned model moved from the base…")
        drift = scoring.answer_drift(list(zip(prompts, base_ids, strict=True)), adapters, ev.progress.advance)
        results = []
        for _target, name in ev.columns:
            if name is None:
                results.append(
                    self._result(base_text, base_passed, [False] * len(prompts), None, base_accuracy)
                )
                continue
            changed = [d.changed for d in drift[name]]
            redo = [i for i, item in enumerate(self.items) if changed[i] and item.scorer is not None]
            ev.progress.begin(f"General ability: {_label(ev, name)} answers what changed…")
            with scoring.use(name):
                new_ids = scoring.generate(
                    [prompts[i] for i in redo], [self.budgets[i] for i in redo], ev.progress.advance
                )
            ev.progress.advance(len(prompts) - len(redo))
            answers: list[str | None] = [None if c else t for c, t in zip(changed, base_text, strict=True)]
            passed = list(base_passed)
            for i, ids in zip(redo, new_ids, strict=True):
                answers[i] = scoring.decode(ids)
                passed[i] = score_reply(self.items[i], answers[i])
            results.append(self._result(answers, passed, changed, drift[name], base_accuracy))
        return results

    def _result(self, answers, passed, changed, drift, base_accuracy) -> dict[str, Any]:
        accuracy = _accuracy(passed)
        tokens = sum(d.tokens for d in drift) if drift else 0
        items = []
        for i, item in enumerate(self.items):
            items.append(
                {
                    "index": item.index,
                    "category": item.category,
                    "prompt": item.prompt,
                    "answer": answers[i],
                    "expected": item.expected,
                    "scorer": item.scorer,
                    "passed": passed[i],
                    "changed": changed[i],
                    "kl": round(drift[i].kl_sum / drift[i].tokens, 5) if drift and drift[i].tokens else 0.0,
                }
            )
        checkable = [p for p in passed if p is not None]
        return {
            "version": VERSIONS[PROBE],
            "prompts": len(self.items),
            "checkable": len(checkable),
            "passed": sum(bool(p) for p in checkable),
            "accuracy": accuracy,
            "accuracy_drop": round(base_accuracy - accuracy, 4),
            "kl": round(sum(d.kl_sum for d in drift) / tokens, 5) if tokens else 0.0,
            "changed": round(sum(changed) / len(changed), 4) if changed else 0.0,
            "items": items,
        }


def _accuracy(passed: list[bool | None]) -> float:
    checkable = [p for p in passed if p is not None]
    return round(sum(bool(p) for p in checkable) / len(checkable), 4) if checkable else 0.0


def _label(ev, adapter: str) -> str:
    return next(t.label for t, name in ev.columns if name == adapter)
