"""`whetstone-engine fit-check --config RUN.toml`: will this run fit, and how long will it take?

Without --estimate-only it loads the model and runs a few real steps on the longest rows
(see engine.training.fit_check); with it, only the arithmetic of engine.models.memory_estimate
runs (no torch).

With --json stdout carries one JSON object per line:
  {"type": "progress", "message": "Loading the model…"}            while working
  {"type": "fit", "fits": ..., "peak_memory_bytes": ..., ...}        FitReport.as_dict(), last line
  {"type": "estimate", "total_bytes": ..., "parts": [...], ...}      with --estimate-only
or {"type": "error", "message": ..., "hint": ...} just before the usual `error:` line and exit 2.
Exit 0 whether or not the run fits (the answer is the report); 2 for bad input; SIGTERM stops
it like Ctrl+C (exit 3) and the model is freed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.cli.progress import sigterm_stops
from engine.errors import ConfigError, UserError
from engine.util.files import format_duration, format_size


def add_parser(sub) -> None:
    """Add the `fit-check` command to the caller's subparsers."""
    fit = sub.add_parser("fit-check", help="estimate and measure the memory and time a training run needs")
    fit.add_argument("--config", required=True, help="run config TOML (as written by the app or a preset)")
    fit.add_argument("--model", help="model folder (overrides model.path)")
    fit.add_argument("--data", help="training data (overrides data.path)")
    fit.add_argument("--steps", type=int, default=3, help="steps to run; the first is warm-up (default 3)")
    fit.add_argument("--estimate-only", action="store_true", help="print the estimate only; load no model")
    fit.add_argument(
        "--free-gib",
        type=float,
        help="with --estimate-only: judge the estimate against this much free memory",
    )
    fit.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="with --estimate-only: estimate for this device (default cuda)",
    )
    fit.add_argument("--json", action="store_true", help="one JSON object per line on stdout")


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def resolve_config(args: argparse.Namespace):
    from engine.config import load_config

    if args.steps < 1:
        raise ConfigError(f"--steps = {args.steps} is not allowed: an integer >= 1.")
    if args.free_gib is not None and args.free_gib <= 0:
        raise ConfigError(f"--free-gib = {args.free_gib} is not allowed: a positive number of GiB.")
    config = load_config(args.config)
    overrides = {}
    if args.model:
        overrides["model.path"] = str(Path(args.model).expanduser().resolve())
    if args.data:
        overrides["data.path"] = str(Path(args.data).expanduser().resolve())
    config = config.with_overrides(overrides)
    if not config.model.path:
        raise ConfigError("No model folder given.", "Set model.path in the config or pass --model DIR.")
    return config


def run(args: argparse.Namespace) -> int:
    try:
        config = resolve_config(args)
        if args.estimate_only:
            return _estimate_only(args, config)
        return _fit(args, config)
    except UserError as exc:
        if args.json:
            _emit({"type": "error", "message": exc.message, "hint": exc.hint})
        raise


def _estimate_only(args: argparse.Namespace, config) -> int:
    from engine.models.memory_estimate import estimate_training_memory, suggestions

    free = int(args.free_gib * 2**30) if args.free_gib else None
    estimate = estimate_training_memory(config.model.path, config, args.device, free)
    fits = estimate.fits(free) if free else None
    tips = suggestions(estimate, config, free) if free and not fits else []
    if args.json:
        _emit(
            {
                "type": "estimate",
                **estimate.as_dict(),
                "free_memory_bytes": free,
                "fits": fits,
                "suggestions": tips,
            }
        )
        return 0
    _print_parts(estimate)
    if free:
        print(f"{'Fits' if fits else 'Does not fit'} in {format_size(free)} free.")
    for tip in tips:
        print(f"  try: {tip}")
    return 0


def _fit(args: argparse.Namespace, config) -> int:
    from engine.training.fit_check import fit_check

    def progress(message: str) -> None:
        if args.json:
            _emit({"type": "progress", "message": message})
        else:
            print(message, file=sys.stderr, flush=True)

    with sigterm_stops():  # the GUI cancels by terminating us: stop like Ctrl+C (main() answers exit 3)
        report = fit_check(config, steps=args.steps, progress=progress)
    if args.json:
        _emit({"type": "fit", **report.as_dict()})
        return 0
    print(report.message)
    kind = "GPU peak (allocated)" if report.memory_kind == "cuda_allocated" else "Process peak (RSS)"
    print(
        f"  {kind}: {format_size(report.peak_memory_bytes)}; "
        f"estimate {format_size(report.estimate.total_bytes)} "
        f"({format_size(report.estimate.tensor_bytes)} in tensors)"
    )
    if report.seconds_per_step:
        print(
            f"  {report.seconds_per_step:.2f} s per step, {report.tokens_per_second:.0f} tokens/s; "
            f"{report.total_steps} steps take about {format_duration(report.eta_seconds or 0)}"
        )
    for tip in report.suggestions:
        print(f"  try: {tip}")
    return 0


def _print_parts(estimate) -> None:
    width = max(len(p.name) for p in estimate.parts)
    for part in estimate.parts:
        print(f"{part.name.ljust(width)}  {format_size(part.bytes):>10}  {part.detail}")
    print(f"{'Total'.ljust(width)}  {format_size(estimate.total_bytes):>10}")
