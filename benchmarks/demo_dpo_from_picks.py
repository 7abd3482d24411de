"""SFT, then DPO from pairs picked in compare mode, on the demo model: the pipeline of issue 22.

The picks a user makes in the chat's compare mode (base on the left, the sft run on the right) are
emulated with a fixed rule, and written with the same function the chat's "Left/Right is better"
uses (engine.data.shapes.pair_record):
- a general request (the replay prompts: the forgetting probe's unscored ones, never its scored
  ones): the base's reply is better whenever the two differ (the sft run drifts towards the
  demo's subject);
- a demo fact question (the training data's user turns): the sft run's reply is better when it
  holds a distinctive word of the taught answer, else the pair is skipped.
Then `whetstone-engine train --method dpo --init-adapter SFT_RUN` on those pairs, and
`whetstone-engine eval` (facts set + forgetting probe) on the base, the sft run and the dpo run.

    .venv/bin/python benchmarks/demo_dpo_from_picks.py --model MODEL --sft RUN_DIR --out DIR
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine.chat.loading import load_for_chat  # noqa: E402
from engine.chat.settings import GenerationSettings  # noqa: E402
from engine.data.shapes import Shape, pair_record  # noqa: E402
from engine.eval.replay import replay_prompts  # noqa: E402

SHAPE = Shape("preference", {}, "a preference dataset")


def fact_prompts(limit: int) -> list[tuple[list[dict], str]]:
    rows = [json.loads(line) for line in (REPO / "resources/demo/whetstone_facts.jsonl").open()]
    out = []
    for row in rows[:limit]:
        messages = row["messages"]
        out.append((messages[:-1], messages[-1]["content"]))
    return out


def distinctive(answer: str) -> set[str]:
    """Capitalised words and numbers of the taught answer, minus the subject's own name."""
    words = set(re.findall(r"\b(?:[A-Z][a-zA-Z]+|\d+)\b", answer)) - {"Whetstone", "The", "It", "A"}
    return {w.lower() for w in words}


def replies(model_dir: str, adapter: str | None, prompts: list[list[dict]], tokens: int) -> list[str]:
    from engine.chat.loading import stream_chat

    model, tokenizer = load_for_chat(model_dir, adapter)
    settings = GenerationSettings(max_new_tokens=tokens)
    out = []
    for messages in prompts:
        out.append("".join(stream_chat(model, tokenizer, messages, settings)).strip())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--sft", required=True, help="the sft run folder")
    parser.add_argument("--out", required=True)
    parser.add_argument("--general", type=int, default=24, help="general prompts compared")
    parser.add_argument("--facts", type=int, default=30, help="fact questions compared")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument(
        "--cache-dir", help="eval's cache of the base's probe answers (reused when it has them)"
    )
    parser.add_argument("--skip-to-eval", action="store_true", help="reuse OUT's picked pairs and dpo run")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    run = out / "dpo-run"
    if not args.skip_to_eval:
        data = pick_pairs(args, out)
        print(f"picked pairs in {time.perf_counter() - started:.0f} s", flush=True)
        train_dpo(args, data, run)
    evaluate(args, out, run)
    print(f"total {time.perf_counter() - started:.0f} s")


ENGINE = [sys.executable, "-m", "engine.cli"]


def pick_pairs(args, out: Path) -> Path:
    """Base (left) against the sft run (right) on the same prompts; the picks by the rule above."""
    general = [[{"role": "user", "content": item.prompt}] for item in replay_prompts()[: args.general]]
    facts = fact_prompts(args.facts)
    prompts = general + [messages for messages, _answer in facts]
    left = replies(args.model, None, prompts, args.tokens)
    right = replies(args.model, args.sft, prompts, args.tokens)
    pairs, kept = [], {"general": 0, "facts": 0}
    for i, messages in enumerate(prompts):
        base, tuned = left[i], right[i]
        if not base or not tuned or base == tuned:
            continue
        if i < len(general):
            pairs.append(pair_record(messages, chosen=base, rejected=tuned, shape=SHAPE))
            kept["general"] += 1
        elif distinctive(facts[i - len(general)][1]) & set(re.findall(r"\w+", tuned.lower())):
            pairs.append(pair_record(messages, chosen=tuned, rejected=base, shape=SHAPE))
            kept["facts"] += 1
    data = out / "picked-pairs.jsonl"
    data.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs))
    print(f"picked {len(pairs)} pairs ({kept})", flush=True)
    return data


def train_dpo(args, data: Path, run: Path) -> None:
    flags = [
        "--method",
        "dpo",
        "--init-adapter",
        args.sft,
        "--max-steps",
        str(args.steps),
        "--batch-size",
        "4",
    ]
    flags += ["--learning-rate", str(args.learning_rate), "--beta", str(args.beta), "--validation-ratio", "0"]
    subprocess.run(
        [
            *ENGINE,
            "train",
            "--model",
            args.model,
            "--data",
            str(data),
            "--output",
            str(run),
            *flags,
            "--quiet",
        ],
        check=True,
    )


def evaluate(args, out: Path, run: Path) -> None:
    """The scorecard (demo facts set, forgetting probe) of the base, the sft run and the dpo run."""
    report = out / "eval.json"
    flags = ["--set", str(REPO / "resources/demo/eval-sets/facts.jsonl"), "--probe", "forgetting"]
    flags += ["--no-validation", "--output", str(report)]
    flags += ["--cache-dir", args.cache_dir] if args.cache_dir else []
    subprocess.run(
        [*ENGINE, "eval", "--model", args.model, "--adapter", args.sft, "--adapter", str(run), *flags],
        check=True,
    )
    for model in json.loads(report.read_text())["models"]:
        facts_set = model["sets"]["facts"]
        forgetting = model.get("probes", {}).get("forgetting", {})
        print(
            f"{model['label']:>20}: facts {facts_set['passed']}/{facts_set['scored']}, "
            f"forgetting probe {forgetting.get('passed')}/{forgetting.get('checkable')} "
            f"(accuracy {forgetting.get('accuracy')}, drop {forgetting.get('accuracy_drop')})"
        )


if __name__ == "__main__":
    main()
