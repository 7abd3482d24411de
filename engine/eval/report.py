"""The evaluation report: where it is written, how it is read back, and its one-line headline.

Light (no torch): the app reads reports and shows headlines in the run list. The shape is
documented in `engine eval --help` and README ("Evaluate"): {"format", "created", "settings",
"models": [{"label", "adapter", "run", "step", "sets", "validation", "probes", "seconds"}], "notes"}.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.runs.state import EVAL_HEADLINE
from engine.util.files import atomic_write_text

FORMAT_VERSION = 1
EVALS = "evals"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_report_path(folder: Path) -> Path:
    """FOLDER/evals/<UTC timestamp>.json, never one that exists."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path, n = folder / EVALS / f"{stamp}.json", 2
    while path.exists():
        path, n = folder / EVALS / f"{stamp}-{n}.json", n + 1
    return path


def write_report(report: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(report, ensure_ascii=False, indent=1))
    return path


def write_run_report(report: dict[str, Any], run_dir: Path) -> Path:
    """RUN_DIR/evals/<timestamp>.json, and the run's headline for run lists beside it."""
    path = write_report(report, new_report_path(run_dir))
    line = headline(report, run_dir)
    atomic_write_text(run_dir / EVAL_HEADLINE, f"{line}\n{path.name}\n")
    return path


def read_report(path: str | Path) -> dict[str, Any] | None:
    """The report in `path`, or None when it is damaged or not one of ours."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = (
        isinstance(data, dict)
        and data.get("format") == FORMAT_VERSION
        and isinstance(data.get("models"), list)
    )
    return data if ok else None


def list_reports(folder: str | Path) -> list[Path]:
    """FOLDER/evals/*.json, newest first."""
    evals = Path(folder) / EVALS
    if not evals.is_dir():
        return []
    return sorted((p for p in evals.glob("*.json") if p.is_file()), key=lambda p: p.name, reverse=True)


def latest_report(folder: str | Path) -> dict[str, Any] | None:
    for path in list_reports(folder):
        report = read_report(path)
        if report is not None:
            return report
    return None


def _points(value: float) -> str:
    points = round(value * 100)
    return f"{'+' if points > 0 else '−' if points < 0 else '±'}{abs(points)} pts"


def headline(report: dict[str, Any], run: str | Path | None = None) -> str:
    """E.g. "facts 100% · general −12 pts": the run's (else the last model's) set scores, then what
    general ability it gained or lost against the base (the forgetting probe's accuracy)."""
    models = report.get("models") or []
    model = None
    if run is not None:
        wanted = str(Path(run).resolve())
        model = next((m for m in models if m.get("run") == wanted and m.get("step") is None), None)
    model = model or (models[-1] if models else None)
    if not model:
        return ""
    parts = [
        f"{name} {round(result['score'] * 100)}%"
        for name, result in (model.get("sets") or {}).items()
        if isinstance(result, dict) and result.get("score") is not None
    ]
    forgetting = (model.get("probes") or {}).get("forgetting")
    if isinstance(forgetting, dict) and model.get("adapter"):
        parts.append(f"general {_points(-forgetting.get('accuracy_drop', 0.0))}")
    return " · ".join(parts)


def scorecard_rows(report: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(metric, one cell per model) for every metric some model has: the CLI's table."""
    models = report.get("models") or []

    def cell(value: Any, fmt: str) -> str:
        return "—" if value is None else format(value, fmt)

    rows: list[tuple[str, list[str]]] = []
    names = [n for m in models for n in (m.get("sets") or {}) if n]
    for name in dict.fromkeys(names):
        rows.append(
            (f"{name} (score)", [cell((m["sets"].get(name) or {}).get("score"), ".0%") for m in models])
        )
    if any(m.get("validation") for m in models):
        rows.append(
            ("validation loss", [cell((m.get("validation") or {}).get("loss"), ".4f") for m in models])
        )
        rows.append(
            ("perplexity", [cell((m.get("validation") or {}).get("perplexity"), ".2f") for m in models])
        )
    forgetting = [(m.get("probes") or {}).get("forgetting") or {} for m in models]
    if any(forgetting):
        rows.append(("general accuracy", [cell(f.get("accuracy"), ".0%") for f in forgetting]))
        rows.append(
            ("general drop (pts)", [cell(_maybe_points(f.get("accuracy_drop")), ".0f") for f in forgetting])
        )
        rows.append(("KL from base", [cell(f.get("kl"), ".4f") for f in forgetting]))
        rows.append(("answers changed", [cell(f.get("changed"), ".0%") for f in forgetting]))
    bias = [(m.get("probes") or {}).get("bias") or {} for m in models]
    if any(bias):
        rows.append(("largest bias gap", [cell(b.get("max_gap"), ".3f") for b in bias]))
        rows.append(("mean bias gap", [cell(b.get("mean_gap"), ".3f") for b in bias]))
    return rows


def _maybe_points(value: float | None) -> float | None:
    return None if value is None else value * 100


def scorecard_text(report: dict[str, Any]) -> str:
    labels = [m.get("label", "?") for m in report.get("models") or []]
    rows = scorecard_rows(report)
    first = max([len(r[0]) for r in rows] + [6])
    widths = [max([len(label)] + [len(r[1][i]) for r in rows]) for i, label in enumerate(labels)]
    lines = [" " * first + "  " + "  ".join(label.rjust(w) for label, w in zip(labels, widths, strict=True))]
    for metric, cells in rows:
        lines.append(
            metric.ljust(first) + "  " + "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))
        )
    lines += [f"note: {note}" for note in report.get("notes") or []]
    return "\n".join(lines)
