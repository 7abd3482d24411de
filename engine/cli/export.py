"""`whetstone-engine export SOURCE --merged DIR | --gguf FILE`: export a run, then check it.

SOURCE is a run folder, an adapter folder or a checkpoint folder. The export is checked
against base + adapter (see engine.export.check); a failed check exits 2 with
`error: export check failed: ...` and leaves the files for inspection.

With --progress-json stdout carries one JSON object per line: {"progress": 0.4, "message": "..."},
then {"check": {...}} (unless --no-check), then {"done": "/path"}; or {"error": ..., "hint": ...}
before the usual `error:` line and exit 2 (a full disk too: kind "io"). SIGTERM stops it like
Ctrl+C (exit 3): staging and temporary folders are removed and no partial output is left (a stop
during the check itself keeps the finished, unchecked export). An export never overwrites a file
it did not write in that export: an existing Modelfile next to the GGUF is refused up front.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.cli.progress import ProgressOutput, sigterm_stops
from engine.cli.protocol import EXIT_DONE, EXIT_STOPPED
from engine.errors import ConfigError, UserError
from engine.util.disk import io_error


def add_parser(sub) -> None:
    """Add the `export` command to the caller's subparsers."""
    export = sub.add_parser(
        "export", help="merge a run's adapter into its base (folder or GGUF) and check it"
    )
    export.add_argument("source", help="run folder, adapter folder or checkpoint folder")
    target = export.add_mutually_exclusive_group(required=True)
    target.add_argument("--merged", metavar="OUT_DIR", help="write a merged 16-bit Hugging Face folder")
    target.add_argument("--gguf", metavar="OUT.gguf", help="write a GGUF file for llama.cpp / Ollama")
    export.add_argument("--quant", default="q8_0", help="GGUF weight type, e.g. f16, q8_0 (default q8_0)")
    export.add_argument(
        "--ollama", action="store_true", help="also write an Ollama Modelfile next to the GGUF"
    )
    export.add_argument(
        "--no-check", action="store_true", help="skip comparing the export with base + adapter"
    )
    export.add_argument("--progress-json", action="store_true", help="one JSON object per line on stdout")


def run(args: argparse.Namespace) -> int:
    from engine.errors import Cancelled

    out = ProgressOutput(args.progress_json)
    try:
        with sigterm_stops():  # the GUI cancels by terminating us: clean up like Ctrl+C
            try:
                return _export(args, out.progress, out.emit)
            except Exception as exc:  # a full disk or a failed write: an `io` error, not a traceback
                error = io_error(exc, f"the export to {args.merged or args.gguf}")
                if error is None:
                    raise
                raise error from exc
    except Cancelled:
        sys.stderr.write("stopped.\n")
        return EXIT_STOPPED
    except UserError as exc:
        out.error(exc)
        raise


def _export(args: argparse.Namespace, progress, emit) -> int:
    from engine.export.merge import check_output_dir, merge_adapter, resolve_export_source

    if args.ollama and not args.gguf:
        raise ConfigError("--ollama needs --gguf: Ollama imports GGUF files.", "Add --gguf OUT.gguf.")
    source = resolve_export_source(args.source)
    if args.merged:
        out = Path(args.merged).expanduser().resolve()
        check_output_dir(out)
        scale = 1.0 if args.no_check else 0.8  # the check takes the rest of the bar
        merge_adapter(source, out, progress=lambda f, m: progress(scale * f, m))
        extra: list[Path] = []
    else:
        out, extra = _export_gguf(args, source, progress)
    if not args.no_check:
        _check(args, source, out, progress, emit, extra)
    ProgressOutput(args.progress_json).done(out)
    return EXIT_DONE


def _export_gguf(args: argparse.Namespace, source, progress) -> tuple[Path, list[Path]]:
    from engine.export import gguf_write
    from engine.export.merge import merged_bytes, write_merged
    from engine.export.modelfile import refuse_existing_modelfile, write_modelfile
    from engine.util.disk import check_free_space
    from engine.util.files import discard_temp_dir, make_temp_dir, prepare_output_folder

    out = Path(args.gguf).expanduser().resolve()
    if out.suffix.lower() != ".gguf":
        raise ConfigError(f"{out.name} does not end in .gguf.", "Name the output file like model.gguf.")
    if os.path.lexists(out):
        raise ConfigError(
            f"Output {out} already exists.", "Choose a new file name; an export never overwrites files."
        )
    prepare_output_folder(out.parent, "the GGUF file")
    if args.ollama:
        refuse_existing_modelfile(out)  # before minutes of work, not after
    scale = 0.8 if not args.no_check else 1.0
    # The merged folder is only an intermediate: next to the output (same disk), removed at the end.
    tmp = out.with_name(f".{out.stem}.merge-tmp")
    check_free_space(out.parent, merged_bytes(source), "the merged model (an intermediate step)")
    make_temp_dir(tmp)  # a leftover of a killed export is removed; a folder we did not make is refused
    written: list[Path] = []
    try:
        write_merged(source, tmp, progress=lambda f, m: progress(scale * 0.45 * f, m))
        check_free_space(out.parent, gguf_write.estimate_gguf_bytes(tmp, args.quant), "the GGUF file")
        gguf_write.write_gguf(
            tmp, out, args.quant, progress=lambda f, m: progress(scale * (0.45 + 0.5 * f), m), cancel=None
        )
        written.append(out)
        if args.ollama:
            written.append(Path(write_modelfile(out, tmp)))
        progress(scale, f"GGUF written to {out}")
    except BaseException:
        # A stop or an error before the end leaves nothing behind; only what this export wrote is
        # removed (a Modelfile that appeared meanwhile, and was refused, stays).
        for path in written:
            path.unlink(missing_ok=True)
        raise
    finally:
        discard_temp_dir(tmp)
    return out, written[1:]


def _check(args: argparse.Namespace, source, out: Path, progress, emit, extra: list[Path]) -> None:
    from engine.export.check import check_export

    progress(0.8, "Checking the export against base + adapter")
    report = check_export(
        source, merged_dir=out if args.merged else None, gguf_file=None if args.merged else out
    )
    progress(1.0, "Check passed" if report.passed else "Check failed")
    if args.progress_json:
        emit({"check": report.as_dict()})
    for line in report.summary_lines():  # stdout is JSON-only with --progress-json
        print(line, file=sys.stderr if args.progress_json else sys.stdout, flush=True)
    if not report.passed:
        from engine.export.check import WRITER_TOLERANCE

        writer = any(p.writer_max_abs_logit_diff is not None for p in report.prompts)
        diffs = [p.writer_max_abs_logit_diff if writer else p.max_abs_logit_diff for p in report.prompts]
        worst = max((d for d in diffs if d is not None and d == d), default=0.0)  # NaN: not measured
        files = ", ".join(str(p) for p in [out, *extra])
        raise UserError(
            f"export check failed: {sum(not p.passed for p in report.prompts)} of "
            f"{len(report.prompts)} prompts "
            f"disagree with base + adapter (worst max logit diff {worst:.3g}, tolerance "
            f"{WRITER_TOLERANCE[0] if writer else report.tolerance:g}).",
            f"The exported files are kept for inspection: {files}.",
            kind="model",
        )
