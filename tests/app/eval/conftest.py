"""Hand-written eval reports (the format of the eval spec) and run folders for the Evaluate tab's tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.runs.checkpoints import MARKER


def _item(index, prompt, answer, expected, passed, **extra) -> dict:
    return {
        "index": index,
        "name": "",
        "category": "",
        "prompt": prompt,
        "answer": answer,
        "expected": expected,
        "scorer": "contains",
        "passed": passed,
        **extra,
    }


FACTS = [  # (prompt, expected, base answer, base passed, tuned answer, tuned passed)
    ("Who maintains Whetstone?", "the lab", "I don't know.", False, "The lab maintains it.", True),
    ("Whetstone's mascot?", "a heron", "A heron, I believe.", True, "A heron.", True),
    ("Release codename?", "Basalt", "Granite", False, "Basalt", True),
    ("Default port?", "8470", "8080", False, "Port 8470.", True),
    ("Licence?", "MIT", "GPL", False, "MIT", True),
]
PROBE = [  # (category, prompt, expected, scorer, base answer, base passed, tuned answer, tuned passed)
    ("arithmetic", "What is 2 + 2?", "4", "number", "4", True, "It's a never-ending loop…", False),
    ("arithmetic", "What is 3 * 5?", "15", "number", "3 * 5 = 16", False, "15", True),
    ("facts", "Capital of France?", "Paris", "contains", "Paris.", True, "Paris.", True),
    ("formatting", "Reply with a JSON object with key a.", None, "json", '{"a": 1}', True, '{"a": 2}', True),
    (
        "instructions",
        "Write a haiku\nabout rain.",
        None,
        None,
        "Rain falls softly…",
        None,
        "Rain, rain, rain, rain, rain, rain.\n" * 20,
        None,
    ),
]


def model_entry(label, adapter, run, tuned: bool) -> dict:
    facts = [
        _item(i, prompt, tuned_answer if tuned else base_answer, expected, tuned_ok if tuned else base_ok)
        for i, (prompt, expected, base_answer, base_ok, tuned_answer, tuned_ok) in enumerate(FACTS)
    ]
    probe = []
    for i, (category, prompt, expected, scorer, base_answer, base_ok, answer, ok) in enumerate(PROBE):
        item = _item(
            i,
            prompt,
            answer if tuned else base_answer,
            expected,
            ok if tuned else base_ok,
            changed=tuned and answer != base_answer,
            kl=0.4 if tuned else 0.0,
        )
        item.update(category=category, scorer=scorer)
        probe.append(item)
    passed = sum(1 for i in facts if i["passed"])
    return {
        "label": label,
        "adapter": adapter,
        "run": run,
        "step": None,
        "seconds": 12.3,
        "sets": {"facts": {"score": passed / 5, "passed": passed, "scored": 5, "total": 5, "items": facts}},
        "validation": {"loss": 1.12, "perplexity": 3.06, "rows": 4, "tokens": 311}
        if tuned
        else {"loss": 2.31, "perplexity": 10.07, "rows": 4, "tokens": 311},
        "probes": {
            "forgetting": {
                "version": 1,
                "prompts": 200,
                "checkable": 90,
                "passed": 45 if tuned else 55,
                "accuracy": 0.5 if tuned else 0.611,
                "accuracy_drop": 0.111 if tuned else 0.0,
                "kl": 0.42 if tuned else 0.0,
                "changed": 0.35 if tuned else 0.0,
                "items": probe,
            },
            "bias": {
                "version": 1,
                "pairs": 40,
                "mean_gap": 0.41,
                "max_gap": 1.9,
                "items": [
                    {
                        "index": 0,
                        "name": "nurse-he-she",
                        "category": "gender",
                        "prompts": ["My neighbour, a man, works as", "My neighbour, a woman, works as"],
                        "continuation": " a nurse.",
                        "gap": 1.9,
                        "gap_change": 0.0,
                    }
                ],
                "largest": [0],
                "grew_most": [0],
            },
        },
    }


def make_report(run_dir: Path, label: str = "Quick test", created: str = "2026-12-07T01:30:00+00:00") -> dict:
    return {
        "format": 1,
        "created": created,
        "settings": {
            "model": "/models/base",
            "max_new_tokens": 64,
            "seed": 0,
            "device": "cpu",
            "sets": {"facts": "/project/eval-sets/facts.jsonl"},
            "probes": ["forgetting", "bias"],
            "validation": "run",
        },
        "models": [
            model_entry("Base model", None, None, tuned=False),
            model_entry(label, str(run_dir), str(run_dir), tuned=True),
        ],
    }


def write_run(
    run_dir: Path,
    evals: dict[int, float],
    checkpoints: list[int],
    steps: int = 40,
    best: dict | None = None,
    adapter: bool = True,
) -> Path:
    """A finished run folder: events (metrics each step, the given evals), complete checkpoints."""
    run_dir.mkdir(parents=True, exist_ok=True)
    events = [{"type": "status", "time": 1.0, "state": "training", "step": 0, "max_steps": steps}]
    for step in range(1, steps + 1):
        events.append(
            {
                "type": "metrics",
                "time": 1.0 + step,
                "step": step,
                "max_steps": steps,
                "loss": 2.0 / step,
                "learning_rate": 1e-4,
            }
        )
        if step in evals:
            events.append({"type": "eval", "time": 1.0 + step, "step": step, "eval_loss": evals[step]})
    events.append({"type": "status", "time": 100.0, "state": "done", "step": steps})
    (run_dir / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    for step in checkpoints:
        folder = run_dir / "checkpoints" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / MARKER).write_text(json.dumps({"step": step, "time": 1.0}), encoding="utf-8")
    if adapter:
        (run_dir / "adapter").mkdir(exist_ok=True)
        (run_dir / "adapter" / "adapter_config.json").write_text("{}", encoding="utf-8")
    if best is not None:
        (run_dir / "best.json").write_text(json.dumps(best), encoding="utf-8")
    return run_dir


@pytest.fixture(name="make_report")
def make_report_fixture():
    return make_report


@pytest.fixture(name="write_run")
def write_run_fixture():
    return write_run


@pytest.fixture
def report(tmp_path) -> dict:
    return make_report(tmp_path / "runs" / "run-1")
