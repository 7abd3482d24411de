"""Time of the default evaluation of a demo run, first (uncached) and again (base answers cached).

    .venv/bin/python benchmarks/eval_time.py RUN_DIR [EVAL_SET.jsonl]

RUN_DIR is a finished run of the demo model (e.g. `whetstone-engine demo --output RUN_DIR`); the set
defaults to resources/demo/eval-sets/facts.jsonl. Prints each stage's start time and the total for an
evaluation with an empty cache, then for the same evaluation with the base's answers cached (issue 20's
target: <= 120 s on a 2-core CPU), with the forgetting and bias probes and the run's validation data.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import engine  # noqa: F401  (offline environment first)
from engine.eval.evaluation import EvalRequest, Evaluation

ROOT = Path(__file__).resolve().parents[1]


def timed(request: EvalRequest, label: str) -> float:
    started, last = time.perf_counter(), [""]

    def progress(_fraction: float, message: str) -> None:
        if message != last[0]:
            print(f"  {time.perf_counter() - started:7.1f} s  {message}", flush=True)
            last[0] = message

    print(f"{label}:")
    report = Evaluation(request, progress).run()
    seconds = time.perf_counter() - started
    tuned = report["models"][-1]
    facts = [f"{n} {r['score']:.0%}" for n, r in tuned["sets"].items() if r["score"] is not None]
    drop = tuned["probes"]["forgetting"]["accuracy_drop"] * 100
    print(f"  {seconds:7.1f} s  total · {', '.join(facts)} · general −{drop:.0f} pts", flush=True)
    return seconds


def main() -> None:
    run = Path(sys.argv[1])
    eval_set = sys.argv[2] if len(sys.argv) > 2 else str(ROOT / "resources/demo/eval-sets/facts.jsonl")
    with tempfile.TemporaryDirectory() as cache:
        from engine.config import load_config

        request = EvalRequest(
            model=load_config(run / "config.toml").model.path,
            adapters=[str(run)],
            sets=[eval_set],
            probes=["forgetting", "bias"],
            cache_dir=Path(cache),
        )
        first = timed(request, "uncached")
        again = timed(request, "cached")
    print(f"uncached {first:.1f} s · cached {again:.1f} s (target <= 120 s cached)")


if __name__ == "__main__":
    main()
