"""Eval reports on disk: where a project's reports are, reading one, naming one in a list,
and the `whetstone-engine eval` command line the Evaluate tab runs.

The report format, its file names and its headline are the engine's (engine.eval.report).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from engine.eval.report import EVALS as EVALS_DIR
from engine.eval.report import headline, new_report_path

FORGETTING = "forgetting"
SET_FOLDERS = ("eval-sets", "prompt-sets")  # prompt sets with expected answers are eval sets too
MAX_LISTED = 60  # newest report files read per project: each is parsed to find duplicates


@dataclass(frozen=True)
class ReportEntry:
    path: Path
    title: str  # "07 Dec 01:30 · run-1, run-2"
    headline: str  # "facts 100% · general −12 pts"
    created: float  # epoch seconds, for sorting


def load_report(path: str | Path) -> dict:
    """A report as a dict; ValueError with a sentence saying what is wrong otherwise."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"The report {path} is gone.") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"The report {path} cannot be read ({exc}).") from None
    if not isinstance(report, dict) or not isinstance(report.get("models"), list) or not report["models"]:
        raise ValueError(f"{path} is not an evaluation report (it lists no models).")
    return report


def is_base(model: dict) -> bool:
    return not model.get("adapter")


def percent(value: float) -> str:
    """0.611 -> "61.1%", 1.0 -> "100%"."""
    text = f"{value * 100:.1f}"
    return (text[:-2] if text.endswith(".0") else text) + "%"


def _created(report: dict, path: Path) -> float:
    try:
        return datetime.fromisoformat(str(report.get("created"))).timestamp()
    except ValueError:
        return path.stat().st_mtime


_entries: dict[Path, tuple[tuple[int, int], tuple[tuple, ReportEntry] | None]] = {}


def _entry(path: Path) -> tuple[tuple, ReportEntry] | None:
    """A report's list entry, parsed once per version of the file (the tab is refreshed on every
    workspace scan, and a report with its items is some 100 kB of JSON)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    version = (stat.st_mtime_ns, stat.st_size)
    cached = _entries.get(path)
    if cached is None or cached[0] != version:
        cached = _entries[path] = (version, _read_entry(path))
    return cached[1]


def _read_entry(path: Path) -> tuple[tuple, ReportEntry] | None:
    try:
        report = load_report(path)
        created = _created(report, path)
    except (ValueError, OSError):
        return None
    names = [str(m.get("label") or "?") for m in report["models"] if not is_base(m)] or ["base model only"]
    stamp = time.strftime("%d %b %H:%M", time.localtime(created))
    # One evaluation writes the same report to PROJECT/evals and to each run's evals folder.
    key = (report.get("created"), tuple(str(m.get("adapter")) for m in report["models"]))
    return key, ReportEntry(path, f"{stamp} · {', '.join(names)}", headline(report), created)


def find_reports(project_path: Path, run_dirs: list[Path]) -> list[ReportEntry]:
    """The project's reports (PROJECT/evals and each RUN_DIR/evals), newest first, duplicates once."""
    files = []
    for folder in [Path(project_path) / EVALS_DIR, *(Path(r) / EVALS_DIR for r in run_dirs)]:
        try:
            files += [(p.stat().st_mtime, p) for p in folder.glob("*.json") if p.is_file()]
        except OSError:
            continue
    files.sort(key=lambda item: item[0], reverse=True)
    entries: dict[tuple, ReportEntry] = {}
    for _mtime, path in files[:MAX_LISTED]:
        found = _entry(path)
        # Of the copies, the project's own (the --output file the app asked for) is listed.
        if found is not None and (found[0] not in entries or path.parent == Path(project_path) / EVALS_DIR):
            entries[found[0]] = found[1]
    return sorted(entries.values(), key=lambda e: e.created, reverse=True)


def eval_sets(project_path: Path) -> list[Path]:
    """PROJECT/eval-sets/*.jsonl and PROJECT/prompt-sets/*.jsonl, sorted by name."""
    found = []
    for name in SET_FOLDERS:
        found += sorted((Path(project_path) / name).glob("*.jsonl"), key=lambda p: p.name.casefold())
    return found


def eval_command(
    base: str, adapters: list[Path], sets: list[Path], output: Path, max_new_tokens: int | None = None
) -> list[str]:
    """The engine arguments of one evaluation: base and adapters, the sets, both probes."""
    args = ["eval", "--model", base]
    if max_new_tokens is not None:
        args += ["--max-new-tokens", str(max_new_tokens)]
    for adapter in adapters:
        args += ["--adapter", str(adapter)]
    for path in sets:
        args += ["--set", str(path)]
    return args + ["--probe", FORGETTING, "--probe", "bias", "--progress-json", "--output", str(output)]


def new_output_path(project_path: Path) -> Path:
    """PROJECT/evals/<timestamp>.json, never an existing file (the engine's naming)."""
    return new_report_path(Path(project_path))
