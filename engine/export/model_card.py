"""The model card every export gets: README.md in a merged folder, <stem>.README.md next to a GGUF.

Markdown with the YAML front matter Hugging Face reads (base_model, library_name, license, tags),
then what the export is and how to run it, the base model and its license, the method and
settings, a summary of the training data (never its rows unless asked), the latest evaluation,
the quantization and the export check, and where it came from. `render_model_card` is pure;
`collect_card_info` reads the folders; `write_model_card` writes the file.

The base's license text is embedded in the card (up to card_sources.LICENSE_TEXT_LIMIT
characters), so a GGUF file shared with its card carries the terms it came under without a
second file next to it that could clash with the user's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.export.card_sections import (
    check_section,
    data_section,
    evaluation_section,
    examples_section,
    is_full,
    run_section,
    settings_section,
    what_it_is_section,
)
from engine.export.card_sources import BaseModel, RunFacts, read_base_model, read_run_facts
from engine.models.info import format_count

if TYPE_CHECKING:
    from engine.config import RunConfig
    from engine.export.check import CheckReport
    from engine.export.merge import ExportSource

KINDS = ("merged", "gguf", "adapter-gguf")
_LIBRARY = {"merged": "transformers", "gguf": "gguf", "adapter-gguf": "peft"}


@dataclass(frozen=True)
class CardInfo:
    kind: str  # one of KINDS
    title: str  # the export's file or folder name
    files: tuple[tuple[str, int], ...]  # (name, bytes) of what the export wrote
    base: BaseModel
    quant: str | None = None  # GGUF weight type
    imatrix: bool | None = None  # None: not asked / not applicable
    modelfile: str | None = None  # the Ollama Modelfile written with it, if any
    base_gguf: str | None = None  # adapter GGUF: the base GGUF it goes with (a name if beside it)
    run_name: str | None = None
    run_path: str | None = None
    config: RunConfig | None = None
    run: RunFacts = field(default_factory=RunFacts)
    best: dict[str, Any] | None = None  # best.json of the run, when it names the exported step
    evaluation: dict[str, Any] | None = None  # the latest evaluation report of the run
    check: CheckReport | None = None
    checked: bool = True  # False: the export was made with --no-check
    examples: tuple[Any, ...] = ()
    examples_asked: int = 0
    version: str = ""
    date: str = ""


def card_path(output: str | Path, kind: str) -> Path:
    """Where an export's card goes: DIR/README.md for a merged folder, else <stem>.README.md beside it."""
    output = Path(output)
    return output / "README.md" if kind == "merged" else output.with_name(f"{output.stem}.README.md")


def refuse_existing_card(output: str | Path) -> None:
    """UserError when <stem>.README.md exists next to a GGUF: an export never overwrites what it did not
    write. Call it before the export's minutes of work."""
    from engine.errors import UserError

    target = card_path(output, "gguf")
    if target.exists() or target.is_symlink():
        raise UserError(
            f"{target} already exists, and an export never overwrites a file it did not write.",
            "Move or rename that file, or export into another folder or under another name.",
            kind="io",
        )


def collect_card_info(
    source: ExportSource,
    output: str | Path,
    kind: str,
    *,
    quant: str | None = None,
    imatrix: bool | None = None,
    check: CheckReport | None = None,
    checked: bool = True,
    modelfile: str | Path | None = None,
    base_gguf: str | Path | None = None,
    include_examples: int = 0,
) -> CardInfo:
    """Everything the card says about an export of `source` written to `output`."""
    import engine
    from engine.eval.report import latest_report
    from engine.export.card_sources import training_examples
    from engine.runs.best import read_best

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    output = Path(output)
    run_dir = source.run_dir
    facts = read_run_facts(run_dir, source.adapter_dir)
    best = read_best(run_dir) if run_dir else None
    return CardInfo(
        kind=kind,
        title=output.name if kind == "merged" else output.stem,
        files=tuple(_files(output, kind, [base_gguf, modelfile])),
        base=read_base_model(source.base_model),
        quant=quant if kind == "gguf" else None,
        imatrix=imatrix if kind == "gguf" else None,
        modelfile=Path(modelfile).name if modelfile else None,
        base_gguf=_beside(output, base_gguf) if kind == "adapter-gguf" and base_gguf else None,
        run_name=run_dir.name if run_dir else None,
        run_path=str(run_dir) if run_dir else None,
        config=source.config,
        run=facts,
        best=best if best and best["step"] == facts.adapter_step else None,
        evaluation=latest_report(run_dir) if run_dir else None,
        check=check,
        checked=checked,
        examples=tuple(training_examples(source.config, include_examples)),
        examples_asked=max(0, include_examples),
        version=engine.__version__,
        date=datetime.now(UTC).strftime("%Y-%m-%d"),
    )


def _files(output: Path, kind: str, extra: list[str | Path | None]) -> list[tuple[str, int]]:
    if kind == "merged":
        found = output.iterdir() if output.is_dir() else ()
        paths = sorted(p for p in found if p.is_file() and p.name != "README.md")
    else:
        paths = [output] + [Path(p) for p in extra if p]
    return [(p.name, p.stat().st_size) for p in paths if p.is_file()]


def _beside(output: Path, other: str | Path) -> str:
    """`other`'s name when it lies next to `output` (how a command run in that folder names it)."""
    other = Path(other)
    return other.name if other.parent.resolve() == output.parent.resolve() else str(other)


def write_model_card(source: ExportSource, output: str | Path, kind: str, **options: Any) -> Path:
    """Write the card of the export at `output` (options: see collect_card_info); return its path.

    A merged folder's README.md is replaced (the folder is this export's own); a card next to a
    GGUF is written new and never replaces a file (refuse_existing_card says so up front).
    """
    from engine.util.files import atomic_write_text, write_new

    text = render_model_card(collect_card_info(source, output, kind, **options))
    target = card_path(output, kind)
    if kind == "merged":
        atomic_write_text(target, text)
    else:
        write_new(target, text.encode("utf-8"))
    return target


# ---- rendering (pure)


def render_model_card(info: CardInfo) -> str:
    """The card as Markdown with a YAML front matter."""
    parts = [
        _front_matter(info),
        f"# {info.title}\n\n{_summary(info)}",
        what_it_is_section(info),
        _base_section(info.base),
        settings_section(info.config, info.run, info.best),
        data_section(info.config, info.run.data, info.run.replay_rows, bool(info.examples)),
        examples_section(info.examples, info.examples_asked),
        evaluation_section(info.evaluation, info.run_path),
        check_section(info.kind, info.quant, info.imatrix, info.check, info.checked),
        run_section(info.version, info.date, info.run_name, info.run),
        _license_text(info.base),
    ]
    return "\n\n".join(p for p in parts if p).rstrip() + "\n"


def _yaml(value: str) -> str:
    import json
    import re

    return value if re.fullmatch(r"[A-Za-z0-9][\w./+-]*", value) else json.dumps(value, ensure_ascii=False)


def _front_matter(info: CardInfo) -> str:
    tags = ["whetstone", "gguf" if info.kind != "merged" else "peft", "lora"]
    if is_full(info.config):
        tags = ["whetstone", "gguf" if info.kind != "merged" else "transformers", "full-fine-tune"]
    elif info.config is not None and info.config.quantization.load_in_4bit:
        tags.append("qlora")
    if info.kind == "adapter-gguf":
        tags.append("lora-adapter")
    if info.quant:
        tags.append(info.quant)
    lines = ["---", f"base_model: {_yaml(info.base.name)}"]
    if info.kind == "adapter-gguf":
        lines.append("base_model_relation: adapter")
    lines += [f"library_name: {_LIBRARY[info.kind]}", "pipeline_tag: text-generation"]
    if info.base.license_id:
        lines.append(f"license: {_yaml(info.base.license_id)}")
    lines += ["tags:", *(f"- {_yaml(t)}" for t in dict.fromkeys(tags)), "---"]
    return "\n".join(lines)


def _method(info: CardInfo) -> str:
    if is_full(info.config):
        return "A full fine-tune"
    if info.config is None:
        return "A LoRA fine-tune"
    return "A QLoRA fine-tune" if info.config.quantization.load_in_4bit else "A LoRA fine-tune"


def _summary(info: CardInfo) -> str:
    what = {
        "merged": "exported as a merged 16-bit Hugging Face folder (the adapter folded into the weights)",
        "gguf": f"exported as a GGUF file ({info.quant}) for llama.cpp and Ollama",
        "adapter-gguf": "exported as a LoRA adapter GGUF that llama.cpp and Ollama apply to a base GGUF",
    }[info.kind]
    if is_full(info.config) and info.kind == "merged":
        what = "exported as a 16-bit Hugging Face folder"
    return f"{_method(info)} of **{info.base.name}**, made with Whetstone {info.version}, {what}."


def _base_section(base: BaseModel) -> str:
    facts = [base.architecture or "architecture not stated"]
    if base.parameters:
        facts.append(f"{format_count(base.parameters)} parameters")
    if base.context_length:
        facts.append(f"context {base.context_length} tokens")
    if base.license_file:
        where = f"text below, from the base folder's `{base.license_file}`"
        license_line = f"{base.license_id or base.license_name} ({where})"
    elif base.license_id or base.license_name:
        license_line = f"{base.license_id or base.license_name} (from the base folder's README.md)"
    else:
        license_line = "not stated in the base model folder"
    return "\n".join(
        [
            "## Base model",
            "",
            f"- Name: {base.name}",
            f"- Folder: `{base.path}`",
            f"- Architecture: {', '.join(facts)}",
            f"- License: {license_line}",
        ]
    )


def _license_text(base: BaseModel) -> str:
    if not base.license_text:
        return ""
    from engine.export.card_sections import fenced

    cut = (
        f"\n\n(Cut at {len(base.license_text)} characters: the full text is in `{base.path}`/"
        f"{base.license_file}.)"
        if base.license_truncated
        else ""
    )
    return (
        f"## License of the base model\n\n<details>\n<summary>{base.license_file}</summary>\n\n"
        f"{fenced(base.license_text, 'text')}{cut}\n\n</details>"
    )
