"""`whetstone-engine eval`: the base model and tuned adapters on eval sets, validation data and probes.

    whetstone-engine eval --model DIR [--adapter RUN|CHECKPOINT|ADAPTER]... [--no-base]
        [--set FILE.jsonl]... [--probe forgetting|bias]... [--validation FILE | --no-validation]
        [--max-new-tokens N] [--output FILE.json] [--json] [--progress-json]

The base is always a column (the "before") unless --no-base. Validation loss uses the first
run's own validation rows unless --validation names a file. The report is written to --output,
to RUN_DIR/evals/<timestamp>.json for every run among the adapters, and with --json printed on
stdout; otherwise a scorecard table is printed. With --progress-json stdout carries
{"progress": f, "message": ...} lines, then {"done": REPORT_PATH} (see engine.cli.progress).
SIGTERM stops it between batches (exit 3); nothing half-written is left.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.cli.progress import ProgressOutput, sigterm_stops
from engine.cli.protocol import EXIT_DONE
from engine.errors import ConfigError, UserError
from engine.util.disk import io_error


def add_parser(sub) -> None:
    """Add the `eval` command to the caller's subparsers."""
    cmd = sub.add_parser("eval", help="score the base and tuned models: eval sets, validation loss, probes")
    cmd.add_argument("--model", help="base model folder (default: the model of the first run given)")
    cmd.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="DIR",
        help="run folder (its final adapter), checkpoint folder or adapter folder; repeatable",
    )
    cmd.add_argument("--no-base", action="store_true", help="leave out the base model's column")
    cmd.add_argument("--set", action="append", default=[], metavar="FILE.jsonl", help="eval set; repeatable")
    cmd.add_argument(
        "--probe",
        action="append",
        default=[],
        choices=("forgetting", "bias"),
        help="forgetting: general ability against the base; bias: paired-prompt gaps; repeatable",
    )
    val = cmd.add_mutually_exclusive_group()
    val.add_argument(
        "--validation", metavar="FILE", help="data file for validation loss (default: the run's)"
    )
    val.add_argument("--no-validation", action="store_true", help="skip validation loss")
    cmd.add_argument("--max-new-tokens", type=int, default=64, help="longest answer generated (default 64)")
    cmd.add_argument("--batch-size", type=int, default=16, help="prompts per batch (default 16)")
    cmd.add_argument("--seed", type=int, default=0)
    cmd.add_argument("--cache-dir", help="where the base's probe answers are kept (default: the data folder)")
    cmd.add_argument("--output", metavar="FILE.json", help="also write the report here")
    cmd.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    cmd.add_argument("--progress-json", action="store_true", help="one JSON object per line on stdout")


def _request(args: argparse.Namespace):
    from engine.eval.evaluation import EvalRequest
    from engine.eval.targets import resolve_target

    model = args.model
    if not model:
        runs = [t.run for t in map(resolve_target, args.adapter) if t.run]
        if not runs:
            raise ConfigError("eval needs --model (or an --adapter that is a run folder).")
        from engine.config import load_config

        model = load_config(runs[0] / "config.toml").model.path
    if args.batch_size < 1 or args.batch_size > 512:
        raise ConfigError(f"--batch-size must be 1..512 (got {args.batch_size}).")
    return EvalRequest(
        model=model,
        adapters=list(args.adapter),
        include_base=not args.no_base,
        sets=list(args.set),
        probes=list(dict.fromkeys(args.probe)),
        validation=None if args.no_validation else (args.validation or "run"),
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        batch_size=args.batch_size,
        cache_dir=Path(args.cache_dir).expanduser() if args.cache_dir else None,
    )


def run(args: argparse.Namespace) -> int:
    out = ProgressOutput(args.progress_json)
    try:
        with sigterm_stops():
            return _evaluate(args, out)
    except UserError as exc:
        out.error(exc)
        raise


def _evaluate(args: argparse.Namespace, out: ProgressOutput) -> int:
    from engine.eval.evaluation import Evaluation
    from engine.eval.report import scorecard_text, write_report, write_run_report

    evaluation = Evaluation(_request(args), out.progress)
    report = evaluation.run()
    written: list[Path] = []
    writes = [(write_report, Path(args.output).expanduser())] if args.output else []
    writes += [(write_run_report, run) for run in dict.fromkeys(t.run for t in evaluation.targets if t.run)]
    for write, where in writes:
        try:
            written.append(write(report, where))
        except OSError as exc:
            raise (io_error(exc, f"writing the report to {where}") or exc) from exc
    if args.json and not args.progress_json:
        sys.stdout.write(json.dumps(report, ensure_ascii=False) + "\n")
    elif args.progress_json:
        if not written:
            out.emit({"report": report})
        out.done(written[0] if written else "")
    else:
        print(scorecard_text(report))
        for path in written:
            print(f"report: {path}")
    return EXIT_DONE
