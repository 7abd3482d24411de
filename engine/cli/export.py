"""`whetstone-engine export SOURCE --merged DIR | --gguf FILE | --adapter-gguf FILE`: export, then check.

SOURCE is a run folder, an adapter folder or a checkpoint folder. The export is checked
against base + adapter (see engine.export.check); a failed check exits 2 with
`error: export check failed: ...` and leaves the files for inspection.

With --progress-json stdout carries one JSON object per line: {"progress": 0.4, "message": "..."},
then {"check": {...}} (unless --no-check), then {"done": "/path", "card": "/path/to/its/README.md"};
or {"error": ..., "hint": ...} before the usual `error:` line and exit 2 (a full disk too: kind
"io"). SIGTERM stops it like Ctrl+C (exit 3): staging and temporary folders are removed and no
partial output is left (a stop during the check itself keeps the finished, unchecked export, without
its model card). An export never overwrites a file it did not write in that export: an existing
Modelfile or <stem>.README.md next to the GGUF is refused up front.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.cli.progress import ProgressOutput, sigterm_stops
from engine.cli.protocol import EXIT_DONE, EXIT_STOPPED
from engine.errors import ConfigError, UserError
from engine.export.gguf_quant import check_quant
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
    target.add_argument(  # adapter-only GGUF: engine.cli.export_adapter
        "--adapter-gguf", metavar="OUT.gguf", help="write the LoRA adapter alone as a GGUF adapter (--lora)"
    )
    export.add_argument(
        "--base-gguf",
        metavar="BASE.gguf",
        help="with --adapter-gguf: the base GGUF for the Modelfile; written (at --quant) if missing",
    )
    export.add_argument("--adapter-type", choices=("f16", "f32"), default="f16", help="GGUF adapter weights")
    export.add_argument("--quant", default="q8_0", help="GGUF weight type, e.g. f16, q8_0 (default q8_0)")
    export.add_argument(
        "--ollama", action="store_true", help="also write an Ollama Modelfile next to the GGUF"
    )
    importance = export.add_mutually_exclusive_group()
    importance.add_argument(
        "--imatrix",
        action="store_true",
        help="use an importance matrix from the run's own training/validation rows for the K-quants",
    )
    importance.add_argument(
        "--imatrix-file", metavar="FILE.npz", help="use a saved importance matrix instead"
    )
    export.add_argument("--imatrix-rows", type=int, metavar="N", help="rows for --imatrix (default 128)")
    export.add_argument(
        "--no-check", action="store_true", help="skip comparing the export with base + adapter"
    )
    export.add_argument(
        "--card-examples", type=int, default=0, metavar="N", help="put N training rows in the model card"
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
                error = io_error(exc, f"the export to {args.merged or args.gguf or args.adapter_gguf}")
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

    if args.ollama and not (args.gguf or args.adapter_gguf):
        raise ConfigError(
            "--ollama needs --gguf or --adapter-gguf: Ollama imports GGUF files.", "Add --gguf OUT.gguf."
        )
    if args.base_gguf and not args.adapter_gguf:
        raise ConfigError("--base-gguf goes with --adapter-gguf.", "Add --adapter-gguf OUT.gguf.")
    check_quant(args.quant)  # a wrong type is said before minutes of merging, not after
    _check_imatrix_args(args)
    _refuse_card_problems(args)
    source = resolve_export_source(args.source)
    if args.adapter_gguf:
        from engine.cli.export_adapter import export_adapter_gguf

        return export_adapter_gguf(args, source, progress, emit)
    if args.merged:
        out = Path(args.merged).expanduser().resolve()
        check_output_dir(out)
        scale = 1.0 if args.no_check else 0.8  # the check takes the rest of the bar
        merge_adapter(source, out, progress=lambda f, m: progress(scale * f, m))
        extra: list[Path] = []
        matrix = None
    else:
        out, extra, matrix = _export_gguf(args, source, progress)
    report = None if args.no_check else _check(args, source, out, progress, emit, extra, matrix)
    card = _write_card(args, source, out, extra, report)  # passed or failed: the card says which
    _raise_if_failed(report, out, [*extra, card])
    done(args, out, card)
    return EXIT_DONE


def _refuse_card_problems(args: argparse.Namespace) -> None:
    """Before any work: the model card's place next to a GGUF is free, and --card-examples is sane."""
    from engine.export.model_card import refuse_existing_card

    if args.card_examples < 0:
        raise ConfigError(f"--card-examples must be 0 or more (got {args.card_examples}).")
    target = args.gguf or getattr(args, "adapter_gguf", None)
    if target:
        refuse_existing_card(Path(target).expanduser().resolve())


def _write_card(args: argparse.Namespace, source, out: Path, extra: list[Path], report) -> Path:
    from engine.export.model_card import write_model_card

    kind = "merged" if args.merged else "adapter-gguf" if getattr(args, "adapter_gguf", None) else "gguf"
    return write_model_card(
        source,
        out,
        kind,
        quant=args.quant,
        imatrix=bool(args.imatrix or args.imatrix_file),
        check=report,
        checked=not args.no_check,
        modelfile=next((p for p in extra if p.suffix == ".Modelfile"), None),
        include_examples=args.card_examples,
    )


def done(args: argparse.Namespace, out: Path, card: Path) -> None:
    if args.progress_json:
        ProgressOutput(True).emit({"done": str(out), "card": str(card)})
    else:
        print(f"Model card: {card}", flush=True)
        print(out)


def _check_imatrix_args(args: argparse.Namespace) -> None:
    wanted = args.imatrix or args.imatrix_file
    if (wanted or args.imatrix_rows is not None) and not args.gguf:
        flag = "--imatrix-file" if args.imatrix_file else "--imatrix"
        raise ConfigError(f"{flag} needs --gguf: it guides GGUF quantization.", "Add --gguf OUT.gguf.")
    if args.imatrix_rows is not None and not args.imatrix:
        raise ConfigError("--imatrix-rows needs --imatrix.", "Add --imatrix, or drop --imatrix-rows.")
    if wanted and args.quant in ("f32", "f16", "bf16", "q8_0"):
        raise ConfigError(
            f"An importance matrix changes nothing in a {args.quant} file (llama.cpp uses one for 4-6 bits).",
            "Pick a K-quant such as --quant q4_k_m, or drop the importance matrix.",
        )


def _imatrix_input(args: argparse.Namespace, source) -> tuple[list | None, dict | None]:
    """(rows to collect on, or a saved matrix): read before the merge, so bad input fails in seconds."""
    from engine.export import imatrix

    if args.imatrix_file:
        return None, imatrix.load_imatrix(args.imatrix_file, source.base_model)
    if args.imatrix:
        rows = args.imatrix_rows if args.imatrix_rows is not None else imatrix.DEFAULT_ROWS
        return imatrix.imatrix_rows(source, rows), None
    return None, None


def _export_gguf(args: argparse.Namespace, source, progress) -> tuple[Path, list[Path], dict | None]:
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
    rows, matrix = _imatrix_input(args, source)
    merged_at = 0.35 if rows else 0.45  # the collection takes 0.35-0.45
    scale = 0.8 if not args.no_check else 1.0
    # The merged folder is only an intermediate: next to the output (same disk), removed at the end.
    tmp = out.with_name(f".{out.stem}.merge-tmp")
    check_free_space(out.parent, merged_bytes(source), "the merged model (an intermediate step)")
    make_temp_dir(tmp)  # a leftover of a killed export is removed; a folder we did not make is refused
    written: list[Path] = []
    try:
        write_merged(source, tmp, progress=lambda f, m: progress(scale * merged_at * f, m))
        if rows:
            from engine.export.imatrix import collect_imatrix

            matrix = collect_imatrix(tmp, rows, progress=lambda f, m: progress(scale * (0.35 + 0.1 * f), m))
        check_free_space(out.parent, gguf_write.estimate_gguf_bytes(tmp, args.quant), "the GGUF file")
        gguf_write.write_gguf(
            tmp,
            out,
            args.quant,
            progress=lambda f, m: progress(scale * (0.45 + 0.5 * f), m),
            cancel=None,
            imatrix=matrix,
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
    return out, written[1:], matrix  # the check rounds its reference with the same matrix


def _check(args: argparse.Namespace, source, out: Path, progress, emit, extra: list[Path], matrix=None):
    from engine.export.check import check_export, reference_words

    progress(0.8, f"Checking the export against {reference_words(source)}")
    report = check_export(
        source,
        merged_dir=out if args.merged else None,
        gguf_file=None if args.merged else out,
        imatrix=matrix,
    )
    return show_check(args, report, progress, emit)


def show_check(args: argparse.Namespace, report, progress, emit):
    """The check's verdict on the progress bar, as JSON and as summary lines; returns the report."""
    progress(1.0, "Check passed" if report.passed else "Check failed")
    if args.progress_json:
        emit({"check": report.as_dict()})
    for line in report.summary_lines():  # stdout is JSON-only with --progress-json
        print(line, file=sys.stderr if args.progress_json else sys.stdout, flush=True)
    return report


def _raise_if_failed(report, out: Path, extra: list[Path]) -> None:
    if report is not None and not report.passed:
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
