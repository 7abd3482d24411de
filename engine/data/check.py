"""`whetstone-engine data check`: one report of what a data file holds and what is wrong with it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.data.files import Problem
from engine.data.reading import read_data
from engine.data.shapes import PREFERENCE_SHAPES


@dataclass
class CheckReport:
    file: str
    kind: str
    format: str
    format_reason: str
    rows: int
    valid_rows: int
    problems: list[Problem] = field(default_factory=list)
    token_stats: dict[str, Any] | None = None

    def skipped(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in self.problems:
            if p.severity == "error":
                counts[p.kind] = counts.get(p.kind, 0) + 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "problems"}
        out["skipped"] = self.skipped()
        out["problems"] = [p.as_dict() for p in self.problems]
        return out

    def first_problem(self) -> str:
        """The first row that is not used and why ("line 3: invalid JSON ..."), or ""."""
        first = next((p for p in self.problems if p.severity == "error"), None)
        return f"{first.where()}: {first.message}" if first else ""

    def human(self, limit: int = 20) -> str:
        lines = [
            f"{self.file}: {self.kind}, {self.rows} rows",
            f"shape: {self.format} ({self.format_reason})",
            f"usable rows: {self.valid_rows} of {self.rows}",
        ]
        skipped = self.skipped()
        if skipped:
            lines.append(
                "skipped: " + ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in skipped.items())
            )
        warnings = [p for p in self.problems if p.severity == "warning"]
        if warnings:
            lines.append(f"warnings: {len(warnings)} (rows kept as they are)")
        for p in self.problems[:limit]:
            lines.append(f"  {p.where()}: {p.message}" + ("" if p.severity == "error" else " [kept]"))
        if len(self.problems) > limit:
            lines.append(f"  ... {len(self.problems) - limit} more (use --json for all)")
        if self.token_stats:
            s = self.token_stats
            lines.append(
                f"tokens per row: min {s['min']}, median {s['median']:g}, p95 {s['p95']}, max {s['max']}"
            )
            lines.append(
                f"after truncation to {s['max_length']}: {s['trained_tokens']} tokens trained, "
                f"{s['truncated_rows']} rows truncated ({s['truncated_tokens']} tokens cut)"
            )
        return "\n".join(lines)


def check_data(
    path: str | Path,
    fmt: str = "auto",
    columns: dict[str, str] | None = None,
    text_mode: str = "blank_lines",
    tokenizer=None,
    max_length: int = 1024,
    progress=None,
    allow_empty: bool = False,
) -> CheckReport:
    """Read and check a file; with a tokenizer, also render every row and add token statistics.

    Raises DataError when no row is read usable (the CLI turns that into exit code 2), unless
    `allow_empty`: then the report has `valid_rows == 0` and its problems say why.
    """
    read = read_data(path, fmt, columns, text_mode, allow_empty=allow_empty)
    problems = list(read.problems)
    valid = len(read.rows)
    stats = None
    if tokenizer is not None and read.rows:
        from engine.data.stats import token_length_stats

        def on_row(index: int, rendered, error: str | None) -> None:
            nonlocal valid
            row, line = read.row_numbers[index], read.line_numbers[index]
            if error is not None:
                problems.append(Problem(row, line, error, "unrenderable"))
                valid -= 1
            elif rendered.trained_tokens == 0:
                why = "no trainable tokens after masking" + (
                    " and truncation" if rendered.truncated_tokens else ""
                )
                if rendered.truncated_tokens and read.format in PREFERENCE_SHAPES:
                    why = f"the prompt alone fills the max length {max_length}: no answer token would train"
                problems.append(Problem(row, line, why, "no_trainable_tokens"))
                valid -= 1
            elif rendered.truncated_tokens:
                chars = getattr(rendered, "estimated_from_chars", None)  # measured from a clipped copy
                by = (
                    f"about {rendered.truncated_tokens:,} tokens ({chars:,} characters)"
                    if chars
                    else f"{rendered.truncated_tokens} tokens"
                )
                problems.append(
                    Problem(
                        row,
                        line,
                        f"longer than the max length {max_length}: will be truncated by {by}",
                        "truncated",
                        "warning",
                    )
                )

        stats = token_length_stats(
            tokenizer, read.rows, max_length, progress=progress, total=len(read.rows), on_row=on_row
        ).as_dict()
        problems.sort(key=lambda p: p.row or 0)
    return CheckReport(
        str(path), read.kind, read.format, read.shape.reason, read.records, valid, problems, stats
    )
