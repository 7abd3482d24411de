"""Events in words: the one place an event of `events.jsonl` becomes a line of text.

The CLI prints these lines as the engine trains; the GUI's run monitor shows the same
lines (with a time stamp, and without metrics, which it plots instead).
"""

from __future__ import annotations

import time
from typing import Any

SHOWN_PROBLEMS = 5  # a warning lists this many of its problems, then "..."


def _number(value: Any, spec: str) -> str:
    """`value` formatted, or "?" for a missing one (NaN and inf are written as null)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format(value, spec)
    return "?"


def _count(value: Any) -> str:
    return _number(value, ",") if isinstance(value, int) else _number(value, "")


METHOD_WORDS = {
    "dpo": "DPO",
    "orpo": "ORPO",
    "kto": "KTO",
    "full": "full fine-tuning",
    "prompt_tuning": "prompt tuning",
}


def _preference_text(event: dict[str, Any], prefix: str) -> str:
    """The reward figures of a preference run's metrics or eval event ("" for other runs)."""
    margin, accuracy = event.get(f"{prefix}reward_margin"), event.get(f"{prefix}reward_accuracy")
    if margin is None and accuracy is None:
        return ""
    acc = f"{accuracy:.0%}" if isinstance(accuracy, int | float) and not isinstance(accuracy, bool) else "?"
    return f"  reward margin {_number(margin, '.3f')}  accuracy {acc}"


def event_text(event: dict[str, Any]) -> str | None:
    """The event in words (warnings may add indented lines), or None for events with nothing to say."""
    kind = event.get("type")
    if kind == "metrics":
        return (
            f"step {event.get('step')}/{event.get('max_steps') or '?'}  "
            f"loss {_number(event.get('loss'), '.4f')}  "
            f"lr {_number(event.get('learning_rate') or 0, '.2e')}  "
            f"grad {_number(event.get('grad_norm') or 0, '.3f')}  "
            f"{_number(event.get('tokens_per_second'), '.0f')} tok/s  "
            f"peak {_number(event.get('peak_memory_mb'), '.0f')} MB" + _preference_text(event, "")
        )
    if kind == "status":
        step = f" at step {event['step']}" if event.get("step") else ""
        extra = f" — {event['message']}" if event.get("message") else ""
        return f"[{event.get('state')}]{step}{extra}"
    if kind == "warning":
        problems = event.get("problems") or []
        lines = [f"warning: {event.get('message')}"]
        lines += [f"  {problem}" for problem in problems[:SHOWN_PROBLEMS]]
        if len(problems) > SHOWN_PROBLEMS:
            lines.append("  ...")
        return "\n".join(lines)
    if kind == "error":
        return f"error: {event.get('message')} {event.get('hint') or ''}".rstrip()
    if kind == "checkpoint":
        return f"checkpoint saved at step {event.get('step')}"
    if kind == "eval":
        if event.get("eval_loss") is None:
            return None  # an evaluation that produced no loss (NaN): nothing to report
        return (
            f"eval loss {_number(event['eval_loss'], '.4f')} at step {event.get('step')}"
            + _preference_text(event, "eval_")
        )
    if kind == "data":
        of = f" of {event['tokens']}" if event.get("tokens") is not None else ""
        how = {"auto": " (held out automatically)", "ratio": " (held out)", "file": " (from the file)"}
        validation = event.get("validation")
        source = validation.get("source") if isinstance(validation, dict) else ""
        return (
            f"data: {event.get('train_rows')} training rows, {event.get('validation_rows')} validation "
            f"rows{how.get(source, '')}, {event.get('trained_tokens')} trained tokens{of}"
        )
    if kind == "info" and event.get("message"):
        return str(event["message"])
    if kind == "model":
        world = event.get("world_size") or 1
        ranks = f" × {world} processes (data-parallel; tokens/s is their sum)" if world > 1 else ""
        method = event.get("method")
        how = f", {METHOD_WORDS.get(method, method)}" if isinstance(method, str) and method != "sft" else ""
        return (
            f"model on {event.get('device')}{ranks} ({event.get('dtype')}{how}): "
            f"{_count(event.get('trainable_parameters'))} trainable of "
            f"{_count(event.get('total_parameters'))} parameters"
        )
    return None


def stamped_text(event: dict[str, Any]) -> str | None:
    """`event_text` after the event's local time (HH:MM:SS), for a log that is read later."""
    text = event_text(event)
    if text is None:
        return None
    stamp = time.strftime("%H:%M:%S", time.localtime(event.get("time") or 0))
    return f"{stamp}  {text}"
