"""How long Stop takes to end a reply: in the engine, with slow layers, and through the chat server.

Prints figures, asserts nothing (the tests check that a cancel abandons the token under way; the
time it takes is measured here). Each path starts a reply that cannot end by itself
(min_new_tokens = 100000), waits for a few chunks, cancels, and times cancel -> end of the reply:
  engine        engine.chat.loading.start_reply read on a thread, `stream.cancel()` from another
  slow layers   the same with --layer-delay seconds of sleep added to every decoder layer (stands
                in for a model whose token takes longer than a Stop may: cancel acts between
                layers, so the latency should stay near one layer, not one token)
  app (server)  what the Chat tab does: a `whetstone-engine chat-server` child process, a
                `cancel` request written to its stdin, timed until its `done` line (skipped with
                --no-4bit: the server always loads 4-bit)
Targets: engine under 200 ms, the app's Stop under 500 ms.

    .venv/bin/python benchmarks/chat_stop.py [--model DIR] [--no-4bit] [--repeats 5]
        [--after-chunks 3] [--layer-delay 0.12]

Default model: the demo model (SmolLM2-135M-Instruct, converted once into Whetstone's data
directory if it is not there yet), loaded 4-bit like the Chat tab loads it.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time

from chat_streaming import ChatServer  # benchmarks/ is on sys.path when this runs as a script

MESSAGES = [{"role": "user", "content": "Tell me a very long story about a whetstone."}]
ENDLESS = {"max_new_tokens": 100_000, "min_new_tokens": 100_000}


def engine_stop(model, tokenizer, after_chunks: int, then_wait: float = 0.0) -> tuple[float, dict]:
    """(seconds from cancel to the end of the iteration, the reply's stats).

    Cancels `then_wait` seconds after the chunks arrived: right after a chunk the generating thread
    is between tokens, where the cancel is seen at once; later it is inside a forward pass.
    """
    from engine.chat.loading import GenerationSettings, start_reply

    stream = start_reply(model, tokenizer, MESSAGES, GenerationSettings(**ENDLESS))
    enough, ended = threading.Event(), []

    def read() -> None:
        count = 0
        for _chunk in stream:
            count += 1
            if count >= after_chunks:
                enough.set()
        ended.append(time.perf_counter())

    reader = threading.Thread(target=read)
    reader.start()
    if not enough.wait(300):
        stream.cancel()
        raise SystemExit(f"no {after_chunks} chunks within 300 s")
    time.sleep(then_wait)
    cancelled_at = time.perf_counter()
    stream.cancel()
    reader.join(60)
    if not ended:
        raise SystemExit("the reply did not end within 60 s of the cancel")
    return ended[0] - cancelled_at, stream.stats.to_dict()


def slow_layers(model, delay: float):
    """Add `delay` seconds to every decoder layer's forward; returns an undo function."""
    import torch

    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m)]
    layers = max(lists, key=len)
    handles = [layer.register_forward_pre_hook(lambda _m, _a: time.sleep(delay)) for layer in layers]
    return len(layers), lambda: [h.remove() for h in handles]


def server_stop(server: ChatServer, after_chunks: int, reply_id: str) -> tuple[float, dict]:
    server._send({"op": "generate", "id": reply_id, "messages": MESSAGES, "settings": ENDLESS})
    chunks, cancelled_at = 0, None
    for line in server.proc.stdout:
        event = json.loads(line)
        if event.get("type") == "error":
            raise SystemExit(f"chat server: {event}")
        if event.get("type") == "chunk" and cancelled_at is None:
            chunks += 1
            if chunks >= after_chunks:
                cancelled_at = time.perf_counter()
                server._send({"op": "cancel", "id": reply_id})
        elif event.get("type") == "done":
            return time.perf_counter() - cancelled_at, event["stats"]
    raise SystemExit("the chat server ended")


def report(name: str, runs: list[tuple[float, dict]]) -> None:
    ms = [seconds * 1000 for seconds, _stats in runs]
    reasons = {stats.get("stop_reason") for _seconds, stats in runs}
    speeds = [s["tokens_per_second"] for _t, s in runs if s.get("tokens_per_second")]
    token_ms = f", {1000 / statistics.median(speeds):.0f} ms per token" if speeds else ""
    print(
        f"  {name:14s} stop -> end median {statistics.median(ms):7.1f} ms  "
        f"({min(ms):.1f}-{max(ms):.1f} ms){token_ms}; stop reasons {sorted(map(str, reasons))}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="base model folder (default: the demo model)")
    parser.add_argument("--no-4bit", action="store_true", help="load the base unquantized")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--after-chunks", type=int, default=3, help="chunks to wait for before Stop")
    parser.add_argument(
        "--layer-delay",
        type=float,
        default=0.12,
        help="seconds added to each decoder layer for the 'slow layers' path (0: skip)",
    )
    args = parser.parse_args()

    import engine  # noqa: F401  (offline environment before transformers is imported)
    from engine.chat.loading import load_for_chat
    from engine.config import QuantizationConfig

    if args.model is None:
        from engine.models.demo import ensure_demo_model

        args.model = str(ensure_demo_model(progress=lambda msg: print(msg, file=sys.stderr)))
    model, tokenizer = load_for_chat(
        args.model, None, quant=QuantizationConfig(load_in_4bit=not args.no_4bit)
    )
    print(
        f"model {args.model} ({'unquantized' if args.no_4bit else '4-bit NF4'}) on {model.device}; "
        f"Stop after {args.after_chunks} chunks, {args.repeats} repeats after one warm-up"
    )

    engine_stop(model, tokenizer, args.after_chunks)  # warm-up
    report("engine", [engine_stop(model, tokenizer, args.after_chunks) for _ in range(args.repeats)])
    if args.layer_delay > 0:
        count, undo = slow_layers(model, args.layer_delay)
        try:
            token_s = count * args.layer_delay
            runs = [
                engine_stop(model, tokenizer, 1, random.uniform(0.1, 0.9) * token_s)
                for _ in range(args.repeats)
            ]
        finally:
            undo()
        report("slow layers", runs)
        print(
            f"    ({args.layer_delay * 1000:.0f} ms added to each of {count} layers: a token takes "
            f">= {token_s * 1000:.0f} ms; Stop pressed at a random point inside a token)"
        )
    if not args.no_4bit:
        del model
        server = ChatServer(args.model, None)
        try:
            server_stop(server, args.after_chunks, "warm-up")
            report(
                "app (server)", [server_stop(server, args.after_chunks, f"r{i}") for i in range(args.repeats)]
            )
        finally:
            server.close()


if __name__ == "__main__":
    main()
