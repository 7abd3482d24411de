"""Memory estimate vs measured peak, and throughput, over a grid of batch size × length × checkpointing.

Every setting runs the real fit check (engine.training.fit_check) in its own process, so each peak is its
own, on rows long enough to fill max_length. Prints a table: the estimate (total, and tensors
only = without the fixed CUDA context / Python process part), the measured peak, their ratio,
seconds per step and tokens/s.

    .venv/bin/python benchmarks/memory_fit.py [--model DIR] [--batch-sizes 1,4] [--lengths 512,2048]
                                              [--checkpointing on,off] [--steps 3]

Default model: the demo model (SmolLM2-135M-Instruct). Meant for a GPU machine, where the measured
peak is torch.cuda.max_memory_allocated and the ratio compares it with the estimate's tensors.
It works on the CPU too (slowly: lower --lengths), where the peak is the process's RSS and the
ratio compares it with the estimate's total (which then includes ~0.55 GiB for Python and the
libraries, and the weight files, whose mapped pages stay in RSS).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = (
    "model data token train adapter weight layer loss batch step rank alpha quant memory "
    "offline desktop stone sharp blade edge grind polish fine tune answer question"
).split()


def make_dataset(path: Path, rows: int, words: int) -> Path:
    """Conversations whose replies are long enough to be truncated at any max_length tried."""
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(rows):
            reply = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(words))
            row = {
                "messages": [
                    {"role": "user", "content": f"Tell me about item {i}."},
                    {"role": "assistant", "content": reply + "."},
                ]
            }
            handle.write(json.dumps(row) + "\n")
    return path


def child(spec: str) -> None:
    """Run one fit check and print its report as one JSON line (in a fresh process)."""
    from engine.config import RunConfig
    from engine.training.fit_check import fit_check

    s = json.loads(spec)
    config = RunConfig().with_overrides(
        {
            "model.path": s["model"],
            "data.path": s["data"],
            "data.max_length": s["length"],
            "training.batch_size": s["batch"],
            "training.gradient_checkpointing": s["checkpointing"],
            "training.max_steps": 100,
        }
    )
    print(json.dumps(fit_check(config, steps=s["steps"]).as_dict()), flush=True)


def measure(spec: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1])


def gib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="model folder (default: the demo model)")
    parser.add_argument("--batch-sizes", default="1,4")
    parser.add_argument("--lengths", default="512,2048")
    parser.add_argument("--checkpointing", default="on,off")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)

    if args.model:
        model = str(Path(args.model).resolve())
    else:
        from engine.models.demo import ensure_demo_model

        model = str(ensure_demo_model())
    batches = [int(b) for b in args.batch_sizes.split(",")]
    lengths = [int(n) for n in args.lengths.split(",")]
    checkpointing = [c.strip() == "on" for c in args.checkpointing.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="whetstone-memfit-"))
    # ~1.3 tokens per word for most tokenizers: 1× max_length words always overflow it.
    data = make_dataset(tmp / "long.jsonl", rows=max(batches) * 2, words=max(lengths))

    header = (
        "batch",
        "length",
        "ckpt",
        "est total",
        "est tensors",
        "measured",
        "ratio",
        "s/step",
        "tokens/s",
        "note",
    )
    print(f"model: {model}")
    print("  ".join(f"{h:>11}" for h in header))
    device = "?"
    for batch in batches:
        for length in lengths:
            for ckpt in checkpointing:
                spec = {
                    "model": model,
                    "data": str(data),
                    "length": length,
                    "batch": batch,
                    "checkpointing": ckpt,
                    "steps": args.steps,
                }
                r = measure(spec)
                if "error" in r:
                    print(
                        "  ".join(f"{v:>11}" for v in (batch, length, "on" if ckpt else "off"))
                        + f"  error: {r['error']}"
                    )
                    continue
                est = r["estimate"]
                device = r["device"]
                # On CUDA compare like with like: allocated tensors. On CPU RSS includes the process.
                compared = est["tensor_bytes"] if r["memory_kind"] == "cuda_allocated" else est["total_bytes"]
                ratio = f"{compared / r['peak_memory_bytes']:.2f}" if r["peak_memory_bytes"] else "-"
                note = "fits" if r["fits"] else "OOM"
                row = (
                    batch,
                    r["sequence_length"],
                    "on" if ckpt else "off",
                    gib(est["total_bytes"]),
                    gib(est["tensor_bytes"]),
                    gib(r["peak_memory_bytes"]),
                    ratio,
                    f"{r['seconds_per_step']:.2f}" if r["seconds_per_step"] else "-",
                    f"{r['tokens_per_second']:.0f}" if r["tokens_per_second"] else "-",
                    note,
                )
                print("  ".join(f"{v:>11}" for v in row), flush=True)
    print(f"GiB; ratio = estimate / measured (tensors on CUDA, total on CPU); device: {device}")


if __name__ == "__main__":
    main()
