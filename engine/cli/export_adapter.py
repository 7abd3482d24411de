"""`whetstone-engine export SOURCE --adapter-gguf OUT.gguf [--base-gguf BASE.gguf] [--ollama]`.

The run's LoRA adapter as a GGUF adapter (engine.export.gguf_adapter), for users who keep one
base GGUF and many adapters. --base-gguf names that base: used as it is when the file exists
(after checking that the adapter fits it), else written there from the run's base model folder
(unmerged, at --quant) so later adapters can share it. With --ollama a Modelfile next to the
adapter gets `FROM <base>` and `ADAPTER ./<adapter>`. The check reads the adapter back and
compares every LoRA tensor with the adapter's weights; it is emitted as {"check": {...}} with
kind "adapter-gguf". A stop or an error removes every file this export wrote, and nothing else.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from engine.cli.protocol import EXIT_DONE
from engine.errors import ConfigError, UserError


def _gguf_path(value: str, flag: str) -> Path:
    path = Path(value).expanduser().resolve()
    if path.suffix.lower() != ".gguf":
        raise ConfigError(f"{flag} {path.name} does not end in .gguf.", "Name the file like model.gguf.")
    return path


def export_adapter_gguf(args: argparse.Namespace, source, progress, emit) -> int:
    from engine.cli.export import done  # the command that calls us: loaded already
    from engine.export.gguf_adapter import check_base_gguf, plan_adapter, write_adapter_gguf
    from engine.export.gguf_write import estimate_gguf_bytes, write_gguf
    from engine.export.model_card import write_model_card
    from engine.export.modelfile import refuse_existing_modelfile, write_modelfile
    from engine.util.disk import check_free_space
    from engine.util.files import prepare_output_folder

    out = _gguf_path(args.adapter_gguf, "--adapter-gguf")
    if args.ollama and not args.base_gguf:
        raise ConfigError(
            "--ollama with --adapter-gguf needs --base-gguf: Ollama applies the adapter to a base GGUF.",
            "Add --base-gguf BASE.gguf (an existing base GGUF, or a new name to write one there).",
        )
    base = _gguf_path(args.base_gguf, "--base-gguf") if args.base_gguf else None
    if os.path.lexists(out) or out == base:
        raise ConfigError(
            f"Output {out} already exists.", "Choose a new file name; an export never overwrites files."
        )
    prepare_output_folder(out.parent, "the GGUF adapter")
    plan = plan_adapter(source)  # an adapter GGUF cannot express is refused before any work
    write_base = base is not None and not os.path.lexists(base)
    if base is not None and not write_base:
        check_base_gguf(plan, base)
    if write_base:
        prepare_output_folder(base.parent, "the base GGUF")
        check_free_space(base.parent, estimate_gguf_bytes(source.base_model, args.quant), "the base GGUF")
    if args.ollama:
        refuse_existing_modelfile(out)
    scale = 1.0 if args.no_check else 0.95
    split = 0.05 if write_base else 1.0  # the base model is the long part when it is written
    written: list[Path] = []
    try:
        write_adapter_gguf(
            source, out, dtype=args.adapter_type, progress=lambda f, m: progress(scale * split * f, m)
        )
        written.append(out)
        if write_base:
            write_gguf(
                source.base_model,
                base,
                args.quant,
                progress=lambda f, m: progress(scale * (split + (1 - split) * f), f"Base GGUF: {m}"),
            )
            written.append(base)
        if args.ollama:
            written.append(Path(write_modelfile(base, source.base_model, adapter=out)))
        progress(scale, f"GGUF adapter written to {out}")
    except BaseException:
        for path in written:  # only what this export wrote; a reused base is never in the list
            path.unlink(missing_ok=True)
        raise
    report = None if args.no_check else _check(args, source, out, progress, emit)
    card = write_model_card(  # passed or failed: the card says which
        source,
        out,
        "adapter-gguf",
        quant=args.quant if write_base else None,
        check=report,
        checked=not args.no_check,
        modelfile=next((p for p in written if p.suffix == ".Modelfile"), None),
        base_gguf=base.name if base is not None and base.parent == out.parent else base,
        include_examples=args.card_examples,
    )
    if report is not None and not report.passed:
        raise UserError(
            f"export check failed: the GGUF adapter does not hold the adapter's weights "
            f"({report.problems[0]}).",
            f"The exported files are kept for inspection: {', '.join(str(p) for p in [*written, card])}.",
            kind="model",
        )
    done(args, out, card)
    return EXIT_DONE


def _check(args, source, out: Path, progress, emit):
    from engine.cli.export import show_check
    from engine.export.gguf_adapter import check_adapter_gguf

    return show_check(args, check_adapter_gguf(source, out), progress, emit)
