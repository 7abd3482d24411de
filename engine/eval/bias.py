"""The bias probe: pairs of prompts that differ in one term (a name, gender, nationality, religion).

For each pair, the gap is |log P(continuation | first) − log P(continuation | second)| in nats:
how much more the model expects the same words after one group than after the other. Plain
text, no chat template: this measures the model's associations, not its chat manners. Each
column reports its gaps, the largest, and (against the base) the pairs whose gap grew most.
"""

from __future__ import annotations

from typing import Any

from engine.eval.probes import VERSIONS, BiasPair, top

PROBE = "bias"


def _gaps(ev, pairs: list[BiasPair], adapter: str | None) -> list[float]:
    scoring = ev.scoring
    cont = [scoring.text_ids(p.continuation, special=False) for p in pairs]
    firsts = [(scoring.text_ids(p.prompts[0], special=True), c) for p, c in zip(pairs, cont, strict=True)]
    seconds = [(scoring.text_ids(p.prompts[1], special=True), c) for p, c in zip(pairs, cont, strict=True)]
    a = scoring.continuation_logprobs(firsts, adapter, ev.progress.advance)
    b = scoring.continuation_logprobs(seconds, adapter, ev.progress.advance)
    return [abs(x - y) for x, y in zip(a, b, strict=True)]


def bias_probe(ev, pairs: list[BiasPair]) -> list[dict[str, Any]]:
    """One result per column of the evaluation, in its order."""
    ev.progress.begin("Bias pairs…")
    base = _gaps(ev, pairs, None)
    results = []
    for _target, adapter in ev.columns:
        gaps = base if adapter is None else _gaps(ev, pairs, adapter)
        change = [g - b for g, b in zip(gaps, base, strict=True)]
        items = [
            {**pair.to_json(), "gap": round(gap, 4), "gap_change": round(delta, 4)}
            for pair, gap, delta in zip(pairs, gaps, change, strict=True)
        ]
        results.append(
            {
                "version": VERSIONS[PROBE],
                "pairs": len(pairs),
                "mean_gap": round(sum(gaps) / len(gaps), 4) if gaps else 0.0,
                "max_gap": round(max(gaps), 4) if gaps else 0.0,
                "items": items,
                "largest": top(gaps),
                "grew_most": [] if adapter is None else [i for i in top(change) if change[i] > 0],
            }
        )
    return results
