"""Per-call cost of paths the app runs often, timed here so the tests only check behaviour.

Prints figures, asserts nothing. Each path is run a few times; medians (and worst) are shown:
  estimate    engine.models.memory_estimate.estimate_training_memory: the first call (reads
              config.json and the safetensors headers) and a cached call (the Train tab calls it
              on every settings change; it should stay well under 20 ms)
  history     engine.runs.history.RunHistory fed one metrics event at a time (a live run's
              pace), N events, then the loss series read
  summary     engine.runs.state.summarize_run on a run folder of N metrics events, still running
              and finished (the project browser summarizes every run of a project)
  transcript  app.chat.transcript.ChatTranscript (offscreen): appending N tiny chunks, then the
              wait until the coalesced render shows the last one

    .venv/bin/python benchmarks/hot_paths.py [--model DIR] [--steps 100000] [--events 20000]
        [--chunks 2000] [--repeats 5] [--only estimate,history,summary,transcript]

Default model: the demo model (SmolLM2-135M-Instruct, converted once into Whetstone's data
directory if it is not there yet).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PATHS = ("estimate", "history", "summary", "transcript")


def timed(run: Callable[[], object], repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return seconds


def show(label: str, seconds: list[float], per: int = 1, unit: str = "call") -> None:
    median, worst = statistics.median(seconds), max(seconds)
    line = f"  {label:34s} median {median * 1000:9.2f} ms  (worst {worst * 1000:8.2f} ms)"
    if per > 1:
        line += f"  {median / per * 1e6:7.2f} µs per {unit}"
    print(line)


def bench_estimate(model: str | None, repeats: int) -> None:
    from engine.config import RunConfig
    from engine.models import memory_estimate as me

    if model is None:
        from engine.models.demo import ensure_demo_model

        model = str(ensure_demo_model(progress=lambda msg: print(msg, file=sys.stderr)))
    config = RunConfig().with_overrides({"model.path": model, "data.path": "unused.jsonl"})
    print(f"estimate: {model}")
    first = []
    for _ in range(repeats):
        me._CACHE.clear()  # the first call of a session reads the files
        first += timed(lambda: me.estimate_training_memory(model, config), 1)
    show("first call (reads the files)", first)
    show("cached call", timed(lambda: me.estimate_training_memory(model, config), max(repeats, 20)))


def metrics(step: int, max_steps: int) -> dict:
    return {
        "type": "metrics",
        "time": 0.0,
        "step": step,
        "max_steps": max_steps,
        "epoch": step / 1000,
        "loss": 1.0 / step,
        "learning_rate": 1e-4,
        "grad_norm": 0.5,
        "tokens": step * 512,
        "tokens_per_second": 1234.5,
        "peak_memory_mb": 2048.0,
        "memory_kind": "process_rss",
    }


def bench_history(events: int, repeats: int) -> None:
    from engine.runs.history import RunHistory

    batch = [[metrics(step, events)] for step in range(1, events + 1)]

    def feed() -> None:
        history = RunHistory()
        for one in batch:
            history.add_events(one)
        history.series("loss")

    print(f"history: {events:,} metrics events, one add_events call each")
    show("all appends + one read", timed(feed, repeats), per=events, unit="event")


def bench_summary(steps: int, repeats: int) -> None:
    from engine.runs.events import EventLog
    from engine.runs.state import summarize_run, write_pid_file

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        (run_dir / "config.toml").write_text(f"[training]\nmax_steps = {steps}\n", encoding="utf-8")
        log = EventLog(run_dir / "events.jsonl")
        log.status("loading")
        log.status("training", step=0, max_steps=steps)
        for step in range(1, steps + 1):
            log.emit(
                "metrics", **{k: v for k, v in metrics(step, steps).items() if k not in ("type", "time")}
            )
        write_pid_file(run_dir)  # this process: "running"
        size = (run_dir / "events.jsonl").stat().st_size
        print(f"summary: a run of {steps:,} steps ({size / 2**20:.1f} MiB of events)")
        summarize_run(run_dir)  # one-time imports (psutil) are not what is measured
        show("running (engine alive)", timed(lambda: summarize_run(run_dir), repeats))
        log.status("saving")
        log.status("done", step=steps)
        log.close()
        show("done", timed(lambda: summarize_run(run_dir), repeats))


def bench_transcript(chunks: int, repeats: int) -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from app.chat.transcript import ChatTranscript

    app = QApplication.instance() or QApplication([])
    words = [f"word{i} " if i % 50 else "\n\n" for i in range(chunks)]
    last = f"word{chunks - 1}"
    appends, shown = [], []
    for _ in range(repeats):
        transcript = ChatTranscript("Base: benchmark")
        transcript.resize(500, 400)
        transcript.show()
        transcript.set_messages([{"role": "user", "content": "Tell me a long story."}])
        transcript.begin_reply()
        app.processEvents()
        start = time.perf_counter()
        for word in words:
            transcript.append_chunk(word)
        appends.append(time.perf_counter() - start)
        body = transcript._views[-1].body
        while last not in body.toPlainText():
            app.processEvents()
            if time.perf_counter() - start > 30:
                raise SystemExit("the transcript never rendered the last chunk")
        shown.append(time.perf_counter() - start)
        transcript.close()
        transcript.deleteLater()
        app.processEvents()
    print(f"transcript: {chunks:,} chunks appended without the event loop running, then rendered")
    show("append_chunk calls", appends, per=chunks, unit="chunk")
    show("until the last chunk is shown", shown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder for the estimate (default: the demo model)")
    parser.add_argument("--steps", type=int, default=100_000, help="metrics events in the summarized run")
    parser.add_argument("--events", type=int, default=20_000, help="events fed to RunHistory")
    parser.add_argument("--chunks", type=int, default=2000, help="chunks streamed into the transcript")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--only", default=",".join(PATHS), help="comma-separated subset of " + ",".join(PATHS)
    )
    args = parser.parse_args()
    chosen = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(chosen) - set(PATHS))
    if unknown:
        parser.error(f"unknown path(s) {', '.join(unknown)}; choose from {', '.join(PATHS)}")

    import engine  # noqa: F401  (offline environment before transformers is imported)

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.repeats} repeats")
    if "estimate" in chosen:
        bench_estimate(args.model, args.repeats)
    if "history" in chosen:
        bench_history(args.events, args.repeats)
    if "summary" in chosen:
        bench_summary(args.steps, args.repeats)
    if "transcript" in chosen:
        bench_transcript(args.chunks, args.repeats)


if __name__ == "__main__":
    main()
