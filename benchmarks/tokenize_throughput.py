"""Throughput of `token_length_stats` on 100k short synthetic conversations.

    WHETSTONE_HOME=.cache/home .venv/bin/python benchmarks/tokenize_throughput.py [--model DIR]
        [--rows N] [--batch-size N] [--max-length N] [--baseline-rows N]

Default model: the demo model's tokenizer (SmolLM2-135M-Instruct). Prints rows/s, total seconds
and the time split between template rendering, tokenization and labelling (tokenization runs on
a worker thread, overlapping rendering, so the parts can add up to more than the total).
`--baseline-rows` times per-row `render_row` on that many rows for comparison.
"""

from __future__ import annotations

import argparse
import random
import time

WORDS = (
    "model data token train adapter weight layer loss batch step rank alpha quant memory offline "
    "desktop stone sharp blade edge grind polish fine tune answer question why how what when the a "
    "is of to and in it you can should would please explain short long example"
).split()


def make_conversations(rows: int, seed: int = 0) -> list[list[dict[str, str]]]:
    """One user turn and one assistant reply each, about 20-60 tokens before the template."""
    rng = random.Random(seed)
    out = []
    for _ in range(rows):
        user = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 20))).capitalize() + "?"
        reply = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 36))).capitalize() + "."
        out.append([{"role": "user", "content": user}, {"role": "assistant", "content": reply}])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model or tokenizer folder (default: the demo model)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument(
        "--baseline-rows", type=int, default=0, help="also time per-row render_row on this many rows"
    )
    args = parser.parse_args()

    import engine  # noqa: F401  (offline environment before transformers is imported)
    from engine.data import stats as stats_module

    if args.model is None:
        from engine.models.demo import ensure_demo_model

        args.model = str(ensure_demo_model())
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    rows = make_conversations(args.rows)

    start = time.perf_counter()
    stats = stats_module.token_length_stats(tokenizer, rows, args.max_length, batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    t = stats.timings
    print(
        f"model {args.model}, {args.rows} conversations, batch {args.batch_size}, "
        f"max length {args.max_length}"
    )
    print(
        f"token_length_stats: {seconds:.1f} s, {args.rows / seconds:,.0f} rows/s, "
        f"{stats.total_tokens / seconds:,.0f} tokens/s"
    )
    print(
        f"  render {t['render']:.1f} s (main thread), tokenize {t['tokenize']:.1f} s (worker thread), "
        f"label {t['label']:.1f} s (main thread)"
    )
    print(
        f"  lengths min {stats.min} median {stats.median:g} p95 {stats.p95} max {stats.max}, "
        f"mean {stats.mean:.1f}, trained tokens {stats.trained_tokens}, truncated rows {stats.truncated_rows}"
    )

    if args.baseline_rows:
        from engine.data.rendering import render_row

        sample = rows[: args.baseline_rows]
        start = time.perf_counter()
        for row in sample:
            render_row(tokenizer, row, args.max_length)
        per_row = (time.perf_counter() - start) / len(sample)
        print(
            f"per-row render_row on {len(sample)} rows: {1 / per_row:,.0f} rows/s "
            f"(about {per_row * args.rows:.1f} s for {args.rows} rows)"
        )


if __name__ == "__main__":
    main()
