"""Overhead of the chat streaming path (`engine.chat.loading.start_reply`) against `model.generate`.

    .venv/bin/python benchmarks/chat_streaming.py [--model DIR] [--adapter DIR] [--no-4bit]
        [--max-new-tokens 32] [--repeats 5] [--main-thread] [--prompt TEXT]

Default model: the demo model (SmolLM2-135M-Instruct, converted once from its GGUF file into
Whetstone's data directory if it is not there yet), loaded the way the Chat pane loads it
(4-bit NF4 via `load_for_chat`; `--no-4bit` loads the unquantized base, whose faster tokens
make the per-token overhead easier to see). Every path gets the same chat-templated prompt and greedy
settings, with `min_new_tokens = max_new_tokens`, so each produces exactly that many tokens.

Paths, alternated after one warm-up each:
  ours           start_reply: generate on a worker thread + per-token decoding, stop-string
                 check and queue, read by the calling thread
  direct/thread  model.generate with no streamer, called on a fresh worker thread (the same
                 threading as ours: the fair baseline for the per-token overhead)
  app (server)   what the Chat tab does: a `whetstone-engine chat-server` child process with the
                 same model, a generate request written to its stdin, timed until its `done`
                 line arrives (skipped with --no-4bit: the server always loads 4-bit)
  direct/main    with --main-thread: model.generate called on the main thread (what a plain
                 script does; on a busy 2-core machine torch's 2-thread CPU kernels were much
                 slower and erratic there, so it is not the default baseline)

Prints median seconds and tokens/s per path, our overhead in percent against both baselines,
and our median time to first token. The default run (4-bit demo model on the CPU, 32 tokens)
takes about two minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time

DEFAULT_PROMPT = "Explain in a few sentences what a whetstone is and how to use one."


class ChatServer:
    """The Chat tab's engine process, driven over stdin/stdout JSON lines like app.chat.client."""

    def __init__(self, model: str, adapter: str | None) -> None:
        import json
        import subprocess
        from pathlib import Path

        self._json = json
        repo = Path(__file__).resolve().parents[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "chat-server"],
            cwd=repo,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=1,
        )
        self._send({"op": "load", "model": model, "adapter": adapter, "device": "auto"})
        event = self._until("loaded", "error")
        if event["type"] != "loaded":
            raise SystemExit(f"chat server: {event}")

    def _send(self, request: dict) -> None:
        self.proc.stdin.write(self._json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def _until(self, *types: str) -> dict:
        for line in self.proc.stdout:
            event = self._json.loads(line)
            if event.get("type") in types:
                return event
        raise SystemExit("the chat server ended")

    def reply(self, messages: list[dict], settings: dict) -> tuple[str, dict]:
        self._send({"op": "generate", "id": "bench", "messages": messages, "settings": settings})
        event = self._until("done", "error")
        if event["type"] != "done":
            raise SystemExit(f"chat server: {event}")
        return event["text"], event["stats"]

    def close(self) -> None:
        self._send({"op": "quit"})
        self.proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="base model folder (default: the demo model)")
    parser.add_argument("--adapter", help="adapter, checkpoint or run folder to load on top")
    parser.add_argument("--no-4bit", action="store_true", help="load the base unquantized")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--main-thread",
        action="store_true",
        help="also time model.generate called on the main thread",
    )
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    args = parser.parse_args()

    import engine  # noqa: F401  (offline environment before transformers is imported)
    from engine.chat.loading import GenerationSettings, load_for_chat, start_reply
    from engine.config import QuantizationConfig
    from engine.models.loading import end_of_turn_ids

    if args.model is None:
        from engine.models.demo import ensure_demo_model

        args.model = str(ensure_demo_model(progress=lambda msg: print(msg, file=sys.stderr)))
    import torch

    t0 = time.perf_counter()
    quant = QuantizationConfig(load_in_4bit=not args.no_4bit)
    model, tokenizer = load_for_chat(args.model, args.adapter, quant=quant)
    load_s = time.perf_counter() - t0
    messages = [{"role": "user", "content": args.prompt}]
    n = args.max_new_tokens
    settings = GenerationSettings(max_new_tokens=n, min_new_tokens=n)

    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
    prompt_len = inputs["input_ids"].shape[-1]
    direct_kwargs = dict(
        **inputs,
        max_new_tokens=n,
        min_new_tokens=n,
        do_sample=False,
        temperature=None,
        top_p=None,
        top_k=None,
        repetition_penalty=1.0,
        eos_token_id=end_of_turn_ids(tokenizer, model),
        pad_token_id=tokenizer.pad_token_id,
    )
    texts: dict[str, str] = {}
    ttfts: list[float] = []

    def ours() -> int:
        stream = start_reply(model, tokenizer, messages, settings)
        texts["ours"] = "".join(stream)
        ttfts.append(stream.stats.time_to_first_token_s)
        return stream.stats.new_tokens

    def direct() -> int:
        with torch.no_grad():
            out = model.generate(**direct_kwargs)
        texts["direct"] = tokenizer.decode(out[0, prompt_len:], skip_special_tokens=True)
        return out.shape[-1] - prompt_len

    def direct_thread() -> int:
        result: list[int] = []
        worker = threading.Thread(target=lambda: result.append(direct()))
        worker.start()
        worker.join()
        return result[0]

    server = None if args.no_4bit else ChatServer(args.model, args.adapter)

    def app_server() -> int:
        text, stats = server.reply(messages, settings.to_dict())
        texts["app"] = text
        return stats["new_tokens"]

    paths = {"ours": ours, "direct/thread": direct_thread}
    if server is not None:
        paths["app (server)"] = app_server
    if args.main_thread:
        paths["direct/main"] = direct
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    for name, run in paths.items():  # warm-up
        if run() != n:
            raise SystemExit(f"{name} produced a different number of tokens than {n}")
    ttfts.clear()
    for _ in range(args.repeats):
        for name, run in paths.items():
            start = time.perf_counter()
            tokens = run()
            seconds[name].append(time.perf_counter() - start)
            assert tokens == n, (name, tokens)

    device = str(getattr(model, "device", "?"))
    weights = "unquantized" if args.no_4bit else "4-bit NF4"
    print(
        f"model {args.model}{f' + {args.adapter}' if args.adapter else ''} ({weights}) on {device} "
        f"(loaded in {load_s:.1f} s), torch threads {torch.get_num_threads()}"
    )
    print(
        f"prompt {prompt_len} tokens, {n} new tokens per reply (greedy, end of turn disabled), "
        f"{args.repeats} alternating repeats after one warm-up"
    )
    print(f"same text from both paths: {'yes' if texts['ours'] == texts['direct'] else 'NO'}")
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    for name, median in medians.items():
        spread = f"{min(seconds[name]):.3f}-{max(seconds[name]):.3f}"
        print(f"  {name:14s} median {median:7.3f} s  ({spread})  {n / median:7.1f} tokens/s")
    for base in [name for name in paths if name not in ("ours", "app (server)")]:
        print(f"overhead of ours vs {base}: {100 * (medians['ours'] / medians[base] - 1):+.1f} %")
        if server is not None:
            print(
                f"overhead of the app's path (server process) vs {base}: "
                f"{100 * (medians['app (server)'] / medians[base] - 1):+.1f} %"
            )
    if server is not None:
        print(f"server text same as ours: {'yes' if texts['app'] == texts['ours'] else 'NO'}")
        server.close()
    print(
        f"our time to first token: median {statistics.median(ttfts) * 1000:.0f} ms "
        f"({min(ttfts) * 1000:.0f}-{max(ttfts) * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
