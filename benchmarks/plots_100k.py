"""How the live training plots cope with a 100k-step run: UI-thread stalls and redraw cost.

Prints a table, asserts nothing. RunPlots (offscreen, 1200x800, shown) is fed 100k metrics
events (with an eval every 200 steps):
  at once     one add_events call with the whole history (re-attaching to a long run)
  streamed    1000 batches of 100 events with processEvents between (a supervisor far faster
              than a real run logs)
  baseline    the same stream into a RunPlots that redraws on every batch instead of
              coalescing (what the timer saves)
  live        after a history of N steps is plotted, 10 new steps every 100 ms for 5 s (a
              supervisor's pace): the steady-state stall, first-paint warm-up excluded
Stalls come from app.infra.stall_monitor.StallMonitor (a 10 ms heartbeat on the UI thread);
"redraw" is the setData work of one coalesced redraw, "paint" one forced repaint of the
plots at 100k points.
Run: .venv/bin/python benchmarks/plots_100k.py [--steps 100000]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def fake_events(steps: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    events: list[dict] = [{"type": "status", "time": 0.0, "state": "training", "step": 0, "max_steps": steps}]
    for step in range(1, steps + 1):
        base = 0.9 + 1.7 * math.exp(-step / (steps / 6))
        events.append(
            {
                "type": "metrics",
                "time": float(step),
                "step": step,
                "max_steps": steps,
                "epoch": step / steps,
                "loss": base * (1 + 0.08 * rng.gauss(0, 1)),
                "learning_rate": 2e-4 * 0.5 * (1 + math.cos(math.pi * step / steps)),
                "grad_norm": abs(0.4 + 0.08 * rng.gauss(0, 1)),
                "tokens": step * 2048,
                "tokens_per_second": 3800 + 150 * rng.gauss(0, 1),
                "peak_memory_mb": 5200.0 + min(step, 300),
                "memory_kind": "cuda_allocated",
            }
        )
        if step % 200 == 0:
            events.append(
                {
                    "type": "eval",
                    "time": float(step),
                    "step": step,
                    "epoch": step / steps,
                    "eval_loss": base * 1.05,
                }
            )
    return events


def pump_until(app, condition, timeout: float = 120.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition() and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.001)


def measure(name: str, events: list[dict], batch: int | None, coalesce: bool = True) -> dict:
    from PySide6.QtWidgets import QApplication

    from app.infra.stall_monitor import StallMonitor
    from app.train.plots import RunPlots

    app = QApplication.instance() or QApplication([])

    class EveryBatch(RunPlots):
        def _schedule_redraw(self) -> None:  # the baseline: no timer, a redraw per batch
            self._on_redraw()

    plots = (RunPlots if coalesce else EveryBatch)()
    plots.resize(1200, 800)
    plots.show()
    pump_until(app, lambda: plots.isVisible(), 5)
    total = sum(1 for e in events if e["type"] == "metrics")
    monitor = StallMonitor()
    monitor.start()
    start = time.perf_counter()
    longest_call = 0.0
    chunks = [events] if batch is None else [events[i : i + batch] for i in range(0, len(events), batch)]
    for chunk in chunks:
        t = time.perf_counter()
        plots.add_events(chunk)
        longest_call = max(longest_call, time.perf_counter() - t)
        app.processEvents()
    pump_until(
        app,
        lambda: (
            len(plots.curve_data("loss")[0]) == total and len(plots.curve_data("loss_smoothed")[0]) == total
        ),
    )
    app.processEvents()
    elapsed = time.perf_counter() - start
    monitor.stop()
    paints = []
    for _ in range(5):
        plots._canvas.viewport().repaint()
        paints.append(plots._canvas.paint_ms)
    redraws = list(plots.redraw_ms)
    row = {
        "case": name,
        "total_s": elapsed,
        "max_stall_ms": monitor.max_stall_ms,
        "longest_add_ms": longest_call * 1000,
        "redraws": len(redraws),
        "redraw_median_ms": statistics.median(redraws),
        "redraw_max_ms": max(redraws),
        "paint_ms": statistics.median(paints),
        "points": len(plots.curve_data("loss")[0]),
    }
    plots.close()
    plots.deleteLater()
    app.processEvents()
    return row


def measure_live(history: list[dict], new: list[dict], seconds: float = 5.0) -> dict:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.infra.stall_monitor import StallMonitor
    from app.train.plots import RunPlots

    app = QApplication.instance() or QApplication([])
    plots = RunPlots()
    plots.resize(1200, 800)
    plots.show()
    plots.add_events(history)
    total = sum(1 for e in history if e["type"] == "metrics")
    pump_until(app, lambda: len(plots.curve_data("loss")[0]) == total)
    pump_until(app, lambda: False, 1.0)  # first paints and warm-up out of the way
    redraws_before = len(plots.redraw_ms)
    feed = iter(range(0, len(new), 10))
    timer = QTimer()
    timer.timeout.connect(lambda: plots.add_events(new[next(feed, len(new)) :][:10]))
    monitor = StallMonitor()
    monitor.start()
    timer.start(100)
    pump_until(app, lambda: False, seconds)
    timer.stop()
    monitor.stop()
    redraws = list(plots.redraw_ms)[redraws_before:]
    row = {
        "case": f"live after {total // 1000}k",
        "total_s": seconds,
        "max_stall_ms": monitor.max_stall_ms,
        "longest_add_ms": 0.0,
        "redraws": len(redraws),
        "redraw_median_ms": statistics.median(redraws),
        "redraw_max_ms": max(redraws),
        "paint_ms": plots._canvas.paint_ms,
        "points": len(plots.curve_data("loss")[0]),
    }
    plots.close()
    plots.deleteLater()
    app.processEvents()
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100_000)
    args = parser.parse_args()
    events = fake_events(args.steps)
    rows = [
        measure("at once", events, None),
        measure("streamed 1000x100", events, len(events) // 1000 + 1),
        measure("baseline: redraw per batch", events, len(events) // 1000 + 1, coalesce=False),
    ]
    more = fake_events(args.steps + 600)[len(events) :]  # the steps after the history, same curve
    rows.append(measure_live(events, more))
    small = fake_events(5000)
    rows.append(measure_live(small, fake_events(5600)[len(small) :]))
    header = (
        f"{'case':<28} {'total s':>8} {'max stall ms':>13} {'longest add ms':>15} {'redraws':>8} "
        f"{'redraw med/max ms':>18} {'paint ms':>9} {'points':>8}"
    )
    print(f"RunPlots, {args.steps} metrics events, Python {sys.version.split()[0]}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['case']:<28} {r['total_s']:>8.2f} {r['max_stall_ms']:>13.1f} {r['longest_add_ms']:>15.1f} "
            f"{r['redraws']:>8} {r['redraw_median_ms']:>8.1f}/{r['redraw_max_ms']:<9.1f} "
            f"{r['paint_ms']:>9.1f} {r['points']:>8}"
        )
    streamed, baseline = rows[1], rows[2]
    print(
        f"coalescing: {baseline['total_s'] / streamed['total_s']:.1f}x faster to the last point than a "
        f"redraw per batch ({streamed['redraws']} vs {baseline['redraws']} redraws)"
    )


if __name__ == "__main__":
    main()
